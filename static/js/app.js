// Small behaviours without inline scripts (the Content-Security-Policy allows only our own files).
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el.matches && el.matches("select[data-autosubmit]")) el.form.submit();
});
