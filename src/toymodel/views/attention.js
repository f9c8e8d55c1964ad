// Behaviour of one attention view (toymodel.views.attention). Inlined into the view's HTML once
// per view, with __TMAV_ID__ replaced by the view's id; reads its data from the JSON script
// element inside the view. No network, no libraries: it runs in JupyterLab, Colab and the book.
(function () {
  "use strict";
  var root = document.getElementById("__TMAV_ID__");
  if (!root || root.getAttribute("data-ready") === "1") {
    return;
  }
  root.setAttribute("data-ready", "1");
  var data = JSON.parse(root.querySelector("script.tmav-data").textContent);
  var chips = Array.prototype.slice.call(root.querySelectorAll(".tmav-tok"));
  var thumbs = Array.prototype.slice.call(root.querySelectorAll(".tmav-thumb"));
  var select = root.querySelector("select.tmav-head");
  var live = root.querySelector(".tmav-live");
  var state = {head: data.head, dest: data.dest};

  function level(w) {
    return Math.max(0, Math.min(data.palette.length - 1, Math.round(w * (data.palette.length - 1))));
  }
  function fmt(w) {
    return w.toFixed(data.decimals);
  }
  function masked(dest, src) {
    return data.causal && src > dest;
  }
  function summary() {
    var row = data.patterns[state.head][state.dest];
    var order = row.map(function (w, j) { return j; }).filter(function (j) {
      return !masked(state.dest, j);
    });
    order.sort(function (a, b) { return row[b] - row[a] || a - b; });
    var shown = order.slice(0, data.top).filter(function (j) {
      return row[j] >= 0.5 * Math.pow(10, -data.decimals);
    });
    var top = (shown.length ? shown : order.slice(0, 1)).map(function (j) {
      return "'" + data.spoken[j] + "' (position " + j + ") " + fmt(row[j]);
    });
    return data.heads[state.head] + ", from token '" + data.spoken[state.dest] + "' (position " +
      state.dest + "): top sources " + top.join(", ") + ".";
  }
  function render() {
    var row = data.patterns[state.head][state.dest];
    root.setAttribute("data-head", String(state.head));
    root.setAttribute("data-dest", String(state.dest));
    chips.forEach(function (chip, j) {
      var off = masked(state.dest, j);
      var k = level(row[j]);
      chip.style.background = off ? "" : data.palette[k];
      chip.style.color = off ? "" : data.ink[k];
      chip.classList.toggle("tmav-masked", off);
      chip.classList.toggle("tmav-dest", j === state.dest);
      if (j === state.dest) {
        chip.setAttribute("aria-current", "true");
      } else {
        chip.removeAttribute("aria-current");
      }
      chip.setAttribute("data-weight", String(row[j]));
      chip.querySelector(".tmav-w").textContent = off ? "\u2013" : fmt(row[j]);
    });
    select.value = String(state.head);
    thumbs.forEach(function (thumb, h) {
      thumb.setAttribute("aria-pressed", h === state.head ? "true" : "false");
      thumb.querySelector(".tmav-rowmark").setAttribute("y", String(state.dest));
    });
    var text = summary();
    if (live.textContent !== text) {
      live.textContent = text;
    }
  }
  function setDest(j) {
    if (j !== state.dest) {
      state.dest = j;
      render();
    }
  }
  function focusChip(j) {
    chips.forEach(function (chip, i) { chip.tabIndex = i === j ? 0 : -1; });
    chips[j].focus();
  }

  chips.forEach(function (chip, j) {
    chip.addEventListener("mouseenter", function () { setDest(j); });
    chip.addEventListener("focus", function () {
      chips.forEach(function (c, i) { c.tabIndex = i === j ? 0 : -1; });
      setDest(j);
    });
    chip.addEventListener("click", function () { setDest(j); });
    chip.addEventListener("keydown", function (event) {
      // left and right only: JupyterLab's command mode takes up and down (select another cell)
      var next = {ArrowRight: j + 1, ArrowLeft: j - 1, Home: 0, End: chips.length - 1}[event.key];
      if (next === undefined) {
        return;
      }
      event.preventDefault();
      focusChip(Math.max(0, Math.min(chips.length - 1, next)));
    });
  });
  select.addEventListener("change", function () {
    state.head = Number(select.value);
    render();
  });
  thumbs.forEach(function (thumb, h) {
    thumb.addEventListener("click", function () {
      state.head = h;
      render();
    });
  });
  render();
})();
