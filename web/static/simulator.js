/* The call simulator (demo only): the channel list follows the emulator, re-read every second
   (the forms above keep their input). */
(function () {
  "use strict";
  var box = document.getElementById("sim-channels");
  if (!box) return;
  var busy = false;
  setInterval(async function () {
    if (busy || box.contains(document.activeElement)) return;
    busy = true;
    try {
      var resp = await fetch(box.dataset.src, { headers: { "Accept": "text/html" } });
      if (resp.ok) box.innerHTML = await resp.text();
    } catch (e) { /* the next tick retries */ }
    busy = false;
  }, 1000);
})();
