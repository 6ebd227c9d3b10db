// Switchyard dashboard: the few things a page needs JavaScript for. The pages work without it.
// - Lists (deliveries, jobs): the first page's rows and the header's counts refresh every few
//   seconds while the page is visible.
// - Times: the server writes them in UTC to the second; here each becomes a relative time
//   ("3 min ago") with the exact time, in the reader's time zone, as its title.
// - Job page: follow the log while the job runs (Server-Sent Events, resumed from the last byte
//   offset after a reconnect), highlight a line range (#L120-L140), and fetch the window holding
//   a #L line that the tail shown does not include.
"use strict";

// Times as the server writes them (`2026-12-07 13:32:20 UTC`) become relative ones, the exact
// time in the reader's zone on hover. Run again on rows a refresh brings.
function localTimes(root) {
  const now = Date.now();
  for (const element of root.querySelectorAll("time")) {
    let at = element.dataset.at;
    if (!at) {
      const match = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC$/.exec(element.textContent.trim());
      if (!match) {
        continue;
      }
      at = match[1] + "T" + match[2] + "Z";
      element.dataset.at = at;
      element.setAttribute("datetime", at);
      element.title = new Date(at).toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      });
    }
    element.textContent = relative((now - Date.parse(at)) / 1000);
  }
}

function relative(seconds) {
  const ago = seconds >= 0;
  const s = Math.abs(seconds);
  const say = (n, unit) => {
    const text = Math.floor(n) + " " + unit;
    return ago ? text + " ago" : "in " + text;
  };
  if (s < 10) {
    return "just now";
  }
  if (s < 60) {
    return say(s, "s");
  }
  if (s < 3600) {
    return say(s / 60, "min");
  }
  if (s < 86400) {
    return say(s / 3600, "h");
  }
  return say(s / 86400, s < 2 * 86400 ? "day" : "days");
}

localTimes(document);
window.setInterval(() => localTimes(document), 30000);

(function () {
  const list = document.querySelector("table.list[data-live]");
  if (!list || new URL(window.location.href).searchParams.has("before")) {
    return;
  }
  async function refresh() {
    if (document.hidden) {
      return;
    }
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) {
      return;
    }
    // Parsed, not run: DOMParser documents execute no scripts.
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const rows = fresh.querySelector("#" + list.id + " tbody");
    if (rows) {
      list.querySelector("tbody").replaceWith(document.adoptNode(rows));
      localTimes(list);
    }
    for (const id of ["count-queued", "count-running", "count-failed"]) {
      const shown = document.getElementById(id);
      const now = fresh.getElementById(id);
      if (shown && now) {
        shown.textContent = now.textContent;
      }
    }
  }
  window.setInterval(() => refresh().catch(() => {}), 3000);
})();

(function () {
  const log = document.getElementById("log");
  if (!log) {
    return;
  }

  // The group new lines go into while following: the last one still open.
  let group = null;
  const lastGroup = log.querySelectorAll("details.group");
  if (lastGroup.length > 0) {
    const last = lastGroup[lastGroup.length - 1];
    const ended = last.querySelector(".group-end");
    if (!ended) {
      group = last.querySelector(".group-body");
    }
  }

  function highlight() {
    const match = /^#L(\d+)(?:-L(\d+))?$/.exec(window.location.hash);
    log.querySelectorAll(".line.hl").forEach((line) => line.classList.remove("hl"));
    if (!match) {
      return;
    }
    const first = Number(match[1]);
    const last = Number(match[2] || match[1]);
    const target = document.getElementById("L" + first);
    if (!target) {
      // Not in the window shown: load the window around it.
      const url = new URL(window.location.href);
      url.searchParams.delete("start");
      if (url.searchParams.get("line") !== String(first)) {
        url.searchParams.set("line", String(first));
        window.location.replace(url.toString());
      }
      return;
    }
    for (let n = first; n <= last; n++) {
      const line = document.getElementById("L" + n);
      if (line) {
        line.classList.add("hl");
        const details = line.closest("details");
        if (details) {
          details.open = true;
        }
      }
    }
    target.scrollIntoView({ block: "center" });
  }

  // Shift-click on a line number selects a range.
  let anchor = null;
  log.addEventListener("click", (event) => {
    const link = event.target.closest("a.ln");
    if (!link) {
      return;
    }
    const n = Number(link.textContent);
    if (event.shiftKey && anchor !== null) {
      event.preventDefault();
      const [a, b] = anchor < n ? [anchor, n] : [n, anchor];
      history.replaceState(null, "", "#L" + a + "-L" + b);
      highlight();
    } else {
      anchor = n;
    }
  });
  window.addEventListener("hashchange", highlight);
  highlight();

  function append(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    for (const node of Array.from(template.content.childNodes)) {
      if (node.nodeType !== Node.ELEMENT_NODE) {
        continue;
      }
      if (node.matches("details.group")) {
        log.appendChild(node);
        const body = node.querySelector(".group-body");
        // A group closed within this chunk takes no further lines.
        group = node.querySelector(".group-end") ? null : body;
      } else if (group) {
        group.appendChild(node);
        if (node.matches(".group-end")) {
          group = null;
        }
      } else {
        log.appendChild(node);
      }
    }
  }

  if (log.dataset.follow === "true") {
    const job = log.dataset.job;
    const stamped = log.dataset.timestamps === "true" ? "&timestamps=1" : "";
    const source = new EventSource("/dashboard/jobs/" + job + "/follow?offset=" + log.dataset.offset + stamped);
    source.addEventListener("lines", (event) => {
      append(event.data);
      log.dataset.offset = event.lastEventId;
    });
    source.addEventListener("end", () => {
      source.close();
      log.dataset.follow = "false";
      const note = document.getElementById("following");
      if (note) {
        note.textContent = "The job has ended.";
      }
      ended().catch(() => {});
    });
  }

  // The job ended while its page was open: take its verdict, duration and the header's counts
  // from a fresh copy of the page, and drop the Cancel button, as a reload would show them.
  async function ended() {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) {
      return;
    }
    // Parsed, not run: DOMParser documents execute no scripts.
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["job-state", "job-duration", "count-queued", "count-running", "count-failed"]) {
      const shown = document.getElementById(id);
      const now = fresh.getElementById(id);
      if (shown && now) {
        shown.replaceWith(document.adoptNode(now));
      }
    }
    for (const id of ["cancel", "cancel-hint"]) {
      const shown = document.getElementById(id);
      if (shown && !fresh.getElementById(id)) {
        shown.remove();
      }
    }
  }
})();
