// The dark and light themes: the toggle, remembered in localStorage where storage works.

import { $ } from "./util.js";

const THEME_KEY = "otel-dashboard:theme";

export function applyTheme(theme) {
  const light = theme === "light";
  document.documentElement.dataset.theme = light ? "light" : "dark";
  const button = $("theme-toggle");
  button.setAttribute("aria-pressed", String(light));
  button.title = light ? "Switch to the dark theme" : "Switch to the light theme";
  button.querySelector(".sr-only").textContent = "Light theme";
}

export function storedTheme() {
  try {
    return window.localStorage.getItem(THEME_KEY);
  } catch {
    return null;
  }
}

export function toggleTheme() {
  const next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
  applyTheme(next);
  try {
    window.localStorage.setItem(THEME_KEY, next);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}
