// Export pages: copy buttons (data-copy="#id" copies that element's text). No inline scripts (CSP).
document.addEventListener("click", (event) => {
  const button = event.target.closest ? event.target.closest("button[data-copy]") : null;
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  const label = button.textContent;
  navigator.clipboard.writeText(source.textContent.trim()).then(
    () => { button.textContent = "✓"; setTimeout(() => { button.textContent = label; }, 1500); },
    () => {},
  );
});
