"""Turn PandaLM's human test set into an sftdesk dataset plus three annotators' labels.

    python examples/pandalm_to_sftdesk.py ../shared/data/pandalm_human_3x999.json OUT_DIR
    python manage.py import_samples pandalm OUT_DIR/samples.jsonl --create
    python manage.py import_labels pandalm OUT_DIR/labels.csv --field preference=0,1,2

Each item becomes one sample (external id = PandaLM's `idx`): the instruction (and input) as the user
turn and both responses in the assistant turn, labelled "Response 1 (model)" and "Response 2 (model)"
from PandaLM's `cmp_key` (99 items repeat another item's texts for a different model pair). Each of
`annotator1..3` becomes one label from the user `pandalm_annotator1..3` with the extra nominal field
`preference` (0 = tie, 1 or 2 = that response is better)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ANNOTATORS = ("annotator1", "annotator2", "annotator3")


def convert(items: list[dict], out: Path) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    labels = 0
    with open(out / "samples.jsonl", "w", encoding="utf-8") as samples, open(out / "labels.csv", "w", encoding="utf-8", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["external_id", "annotator", "preference"])
        for item in items:
            prompt = item["instruction"] + (f"\n\n{item['input']}" if item.get("input") else "")
            # 99 items repeat another's texts under a different model pair: the pair keeps them apart.
            first, second = (item.get("cmp_key") or "_").split("_", 1) if "_" in (item.get("cmp_key") or "") else ("1", "2")
            answer = f"Response 1 ({first}):\n{item['response1']}\n\nResponse 2 ({second}):\n{item['response2']}"
            record = {"id": str(item["idx"]), "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
            samples.write(json.dumps(record, ensure_ascii=False) + "\n")
            for name in ANNOTATORS:
                if item.get(name) is not None:
                    writer.writerow([item["idx"], f"pandalm_{name}", item[name]])
                    labels += 1
    return len(items), labels


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    items = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    n, labels = convert(items, Path(argv[1]))
    print(f"{n} samples, {labels} labels written to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
