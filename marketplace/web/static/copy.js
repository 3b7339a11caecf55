// Copying a rounded amount or a shortened account copies its full value.
// Elements rendered by the amount and account filters (marketplace/web/filters.py) carry the exact value in
// data-copy ("1.334210915569622607" for "1.3342 ETH", the whole address for "0x7099…79C8"). When the text being
// copied lies inside one such element, the clipboard gets that value instead of the text shown.
"use strict";
document.addEventListener("copy", (event) => {
  const selection = document.getSelection();
  if (!selection || selection.isCollapsed || !event.clipboardData) return;
  const holder = (node) => (node && (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement))?.closest("[data-copy]");
  const start = holder(selection.anchorNode);
  if (!start || start !== holder(selection.focusNode)) return;
  event.clipboardData.setData("text/plain", start.dataset.copy);
  event.preventDefault();
});
