/* The theme the user chose (localStorage), set before the page is drawn; dark by default (3 a.m.). */
(function () {
  "use strict";
  try {
    var theme = localStorage.getItem("openads.theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage refused: the default theme */ }
})();
