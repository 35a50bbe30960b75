// The words of the Prefect UI's forms in French, added by the gateway to the UI's page (the
// UI has no translation of its own; the forms' labels and descriptions are already French,
// they come from the flows). Exact words of its buttons and menus, the "(Optional)" mark of
// a field that may stay empty, and a name for the buttons that only show an icon (a screen
// reader would read "button").
(() => {
  "use strict";
  const WORDS = new Map([
    ["Submit", "Valider"],
    ["Add item", "Ajouter une ligne"],
    ["Move to top", "Placer en premier"],
    ["Move to bottom", "Placer en dernier"],
    ["Use default value", "Reprendre la valeur proposée"],
  ]);
  const OPTIONAL = / \(Optional\)$/;

  function translated(text) {
    const bare = text.trim();
    if (WORDS.has(bare)) return text.replace(bare, WORDS.get(bare));
    if (OPTIONAL.test(text)) {
      // a title that says "(facultatif)" already needs no second mark
      return text.replace(OPTIONAL, /facultati/i.test(text) ? "" : " (facultatif)");
    }
    return text;
  }

  function translateText(node) {
    const text = node.nodeValue || "";
    const french = translated(text);
    if (french !== text) node.nodeValue = french;
  }

  function translateTree(root) {
    if (root.nodeType === Node.TEXT_NODE) {
      translateText(root);
      return;
    }
    if (root.nodeType !== Node.ELEMENT_NODE) return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) translateText(node);
  }

  function name(button, label) {
    if (button && !button.textContent.trim() && button.getAttribute("aria-label") !== label) {
      button.setAttribute("aria-label", label);
      button.setAttribute("title", label);
    }
  }

  function nameLineButtons() {
    // each line of a list: a drag handle, the line's fields, a bin button, then its menu
    for (const control of document.querySelectorAll(".schema-form-property-array-item__control")) {
      const bin = control.querySelector(":scope > button");
      if (!bin) continue;
      name(bin, "Supprimer cette ligne");
      const menu = bin.nextElementSibling;
      name(menu && (menu.matches("button") ? menu : menu.querySelector("button")), "Autres actions sur cette ligne");
    }
  }

  let scheduled = false;
  function scheduleNaming() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      nameLineButtons();
    });
  }

  const observer = new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      if (mutation.type === "characterData") translateText(mutation.target);
      else mutation.addedNodes.forEach(translateTree);
    }
    scheduleNaming();
  });
  observer.observe(document.documentElement, {
    childList: true,
    subtree: true,
    characterData: true,
  });
  if (document.body) translateTree(document.body);
})();
