// The book's own page fixes, added to every page by src/toymodel/sphinxext.py (deferred: the
// page is parsed when this runs, and nothing here waits on another host).
"use strict";

// A button's accessible name must contain the text it shows (WCAG 2.5.3, axe
// label-content-name-mismatch): the theme's search field shows "Search Ctrl+K" but is labelled
// "Search". Where a button shows text, its text alone names it.
for (const button of document.querySelectorAll("button[aria-label]")) {
  if (button.innerText.trim()) {
    button.removeAttribute("aria-label");
  }
}

// The colour-mode button is named "Color mode", but Font Awesome turns its icons into SVGs whose
// titles ("Light", "Dark") count as the button's visible text. The icons are decoration: hide
// them from assistive technology, now and whenever Font Awesome redraws them.
function hideDecorativeIcons(root) {
  for (const svg of root.querySelectorAll("svg")) {
    svg.setAttribute("aria-hidden", "true");
    svg.removeAttribute("role");
    svg.removeAttribute("aria-labelledby");
    svg.querySelector("title")?.remove();
  }
}
for (const button of document.querySelectorAll(".theme-switch-button")) {
  hideDecorativeIcons(button);
  new MutationObserver(() => hideDecorativeIcons(button)).observe(button, {childList: true});
}

// Lesson figures are matplotlib PNGs at 100 dpi: shrunk below 0.72 of its natural width, a
// figure's 10 pt text falls under 10 px. A figure wider than that keeps the 0.72 scale and
// scrolls sideways inside its own (keyboard-focusable) box instead.
const MIN_FIGURE_SCALE = 0.72;
function keepFigureReadable(img) {
  const box = img.closest(".cell_output") || img.parentElement;
  const width = Math.ceil(img.naturalWidth * MIN_FIGURE_SCALE);
  if (!img.naturalWidth || width <= box.clientWidth) {
    return;
  }
  img.style.maxWidth = "none";
  img.style.width = `${width}px`;
  box.style.overflowX = "auto";
  box.tabIndex = 0;
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", "wide figure: scroll sideways to see all of it");
}
for (const img of document.querySelectorAll(".cell_output img")) {
  if (img.complete) {
    keepFigureReadable(img);
  } else {
    img.addEventListener("load", () => keepFigureReadable(img));
  }
}
