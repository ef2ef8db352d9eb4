// Progressive enhancement for the subscribe and preferences forms. Everything works
// without it: it only moves the focus to the list of refused fields, shows the day
// picker for a weekly digest only, prefills the browser's time zone and previews queries
// as you type (each line's count and its best matches of the last days, as the
// preferences page shows them without a script). Everything from the server goes in as
// text, never as markup.
(function () {
  "use strict";

  // A refused form: the summary of what to mend takes the focus (autofocus does it
  // without a script; this covers browsers that skip autofocus on a non-field).
  var summary = document.querySelector(".error-summary[tabindex]");
  if (summary && document.activeElement !== summary) { summary.focus(); }

  var tz = document.getElementById("timezone");
  if (tz && tz.getAttribute("data-detect") === "true" && window.Intl) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var found = -1;
    for (var i = 0; zone && i < tz.options.length; i++) {
      if (tz.options[i].value === zone) { found = i; break; }
    }
    // Some browsers report an old name (Asia/Calcutta) that the list does not offer: the
    // offered zone the browser resolves to that same name is the one.
    for (var j = 0; zone && found < 0 && j < tz.options.length; j++) {
      try {
        var resolved = new Intl.DateTimeFormat("en", { timeZone: tz.options[j].value })
          .resolvedOptions().timeZone;
        if (resolved === zone) { found = j; }
      } catch (e) { /* a zone this browser does not know */ }
    }
    if (found >= 0) { tz.selectedIndex = found; }
  }

  // The day only counts for a weekly digest: shown while Weekly is chosen. Without a
  // script it stays, and its label says so.
  var dayField = document.getElementById("day-field");
  var frequencies = document.querySelectorAll("input[name=frequency]");
  function showDay() {
    var weekly = document.querySelector("input[name=frequency][value=weekly]");
    dayField.hidden = !(weekly && weekly.checked);
  }
  if (dayField && frequencies.length) {
    frequencies.forEach(function (radio) { radio.addEventListener("change", showDay); });
    showDay();
  }

  var queries = document.getElementById("queries");
  var out = document.getElementById("queries-preview");
  if (!queries || !out || !window.fetch) { return; }
  var timer = null;
  var generation = 0;

  function line(text, bad) {
    var p = document.createElement("p");
    p.textContent = text;
    if (bad) { p.className = "bad"; }
    return p;
  }

  // Only http(s) links are followed; the server sends no other, and this makes sure.
  function webLink(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url);
  }

  function top(papers) {
    var list = document.createElement("ol");
    list.className = "top";
    papers.forEach(function (paper) {
      var item = document.createElement("li");
      if (webLink(paper.url)) {
        var a = document.createElement("a");
        a.href = paper.url;
        a.textContent = paper.title;
        item.appendChild(a);
      } else {
        item.textContent = paper.title;
      }
      list.appendChild(item);
    });
    return list;
  }

  // Every line goes in one request, sent once typing pauses: a box of 20 queries costs
  // one unit of the preview's rate limit, not 20. When the limit is reached anyway, the
  // preview says so and tries again when the server says it may.
  function refresh() {
    clearTimeout(timer);
    var lines = queries.value.split("\n").map(function (l) { return l.trim(); })
      .filter(function (l) { return l.length > 0; }).slice(0, 20);
    var mine = ++generation;
    if (lines.length === 0) { out.replaceChildren(); return; }
    fetch("/preview?lines=" + encodeURIComponent(lines.join("\n")), { credentials: "same-origin" })
      .then(function (r) {
        if (mine !== generation) { return; }
        if (r.status === 429) {
          var wait = parseInt(r.headers.get("Retry-After"), 10);
          if (!(wait > 0)) { wait = 60; }
          out.replaceChildren(line("Too many previews in a short time: the preview pauses for " +
            wait + " seconds, then shows every line again. Your queries are kept as typed.", true));
          timer = setTimeout(refresh, wait * 1000);
          return;
        }
        if (!r.ok) {
          out.replaceChildren(line("The preview is not available right now; your queries are kept as typed.", true));
          return;
        }
        return r.json().then(function (answer) {
          if (mine !== generation) { return; }
          out.replaceChildren.apply(out, (answer.lines || []).map(show));
        });
      })
      .catch(function () {
        if (mine !== generation) { return; }
        out.replaceChildren(line("The preview could not reach the server; your queries are kept as typed.", true));
      });
  }

  function show(a) {
    var box = document.createElement("div");
    box.className = "preview-line";
    if (a.ok) {
      box.appendChild(line(a.query + ": " + a.matches + " of the " + a.papers +
        " papers of the last " + a.days + " days", false));
      if (a.top && a.top.length) { box.appendChild(top(a.top)); }
    } else {
      box.appendChild(line(a.query + ": " + a.error, true));
    }
    return box;
  }

  queries.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  });
  if (queries.value.trim()) { refresh(); }
})();
