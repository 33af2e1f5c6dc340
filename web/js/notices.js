// Notices above the panels (gaps, server errors, resets): at most three, each dismissable.

import { $, el } from "./util.js";

export function showNotice(kind, text, key) {
  const box = $("notices");
  if (key) for (const old of box.querySelectorAll(".notice")) if (old._key === key) old.remove();
  const notice = el("div", `notice notice-${kind}`);
  notice._key = key;
  notice.dataset.kind = kind;
  notice.appendChild(el("span", "notice-text", text));
  const close = el("button", "icon-button notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => notice.remove());
  notice.appendChild(close);
  box.appendChild(notice);
  while (box.childElementCount > 3) box.firstElementChild.remove();
}
