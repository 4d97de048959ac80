/* The counselor pages' script: plain JavaScript, no build step.
 *
 * Every write goes through the REST API of API.md with the session cookie and the CSRF token; the page's
 * first paint comes from the server (json_script "ui-config" and "initial-sessions"). Words come from
 * Django's JavaScript catalog (gettext/interpolate), so the page speaks the language the counselor chose.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("ui-config");
  if (!configNode) return;
  var ui = JSON.parse(configNode.textContent);
  var locale = ui.language && ui.language.indexOf("zh") === 0 ? "zh-CN" : "en-GB";
  var FINAL = { SCHEDULED: 1, MEETING_FAILED: 1, CANCELLED: 1, COMPLETED: 1, IN_PROGRESS: 1 };

  // Django's catalog (/jsi18n/) defines gettext and interpolate; without it the page stays in English.
  var gettext = window.gettext || function (text) { return text; };

  function fill(text, values) {
    return window.interpolate ? window.interpolate(text, values, true) : text;
  }

  // ---------- the API ----------

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function ApiError(status, body) {
    var error = (body && body.error) || {};
    this.status = status;
    this.code = error.code || (status === 0 ? "NETWORK" : "UNKNOWN");
    this.message = error.message || "";
    this.details = error.details || {};
  }

  function api(method, path, body, headers) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json", "X-CSRFToken": csrfToken() }, headers || {}),
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(
      function (response) {
        return response
          .json()
          .catch(function () { return null; })
          .then(function (data) {
            if (!response.ok) throw new ApiError(response.status, data);
            return data;
          });
      },
      function () { throw new ApiError(0, null); }
    );
  }

  function sessionUrl(id, action) {
    return ui.apiBase + "/" + encodeURIComponent(id) + (action ? "/" + action : "");
  }

  // ---------- time zones: the counselor's, whatever the browser's ----------

  function zoneParts(date) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: ui.timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(date).forEach(function (p) { parts[p.type] = p.value; });
    return parts;
  }

  function zoneOffsetMs(date) {
    var p = zoneParts(date);
    var asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    return asUtc - Math.floor(date.getTime() / 1000) * 1000;
  }

  function pad(n, width) {
    var s = String(Math.abs(n));
    while (s.length < (width || 2)) s = "0" + s;
    return s;
  }

  // "2026-12-01T10:00" read in the counselor's time zone -> "2026-12-01T10:00:00+08:00".
  function localInputToIso(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!m) return null;
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var offset = zoneOffsetMs(new Date(wall));
    var second = zoneOffsetMs(new Date(wall - offset));
    if (second !== offset) offset = second; // the wall time lies across a DST change
    var minutes = Math.round(offset / 60000);
    var sign = minutes < 0 ? "-" : "+";
    return m[1] + "-" + m[2] + "-" + m[3] + "T" + m[4] + ":" + m[5] + ":00" + sign +
      pad(Math.floor(Math.abs(minutes) / 60)) + ":" + pad(Math.abs(minutes) % 60);
  }

  function isoToLocalInput(iso) {
    var p = zoneParts(new Date(iso));
    return p.year + "-" + p.month + "-" + p.day + "T" + pad(+p.hour % 24) + ":" + p.minute;
  }

  function formatWhen(iso) {
    return new Intl.DateTimeFormat(locale, {
      timeZone: ui.timeZone, weekday: "short", year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  }

  function formatTime(iso) {
    return new Intl.DateTimeFormat(locale, {
      timeZone: ui.timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  }

  function formatDay(iso) {
    return new Intl.DateTimeFormat(locale, {
      timeZone: ui.timeZone, weekday: "long", month: "long", day: "numeric",
    }).format(new Date(iso));
  }

  function formatDayTime(iso) {
    return new Intl.DateTimeFormat(locale, {
      timeZone: ui.timeZone, weekday: "short", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  }

  // Puts a start the server offered into a datetime-local field, as if picked there (listeners hear it).
  function setStart(field, iso) {
    field.value = isoToLocalInput(iso);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function personName(id) {
    return ui.people[id] || gettext("someone");
  }

  function typeLabel(code) {
    return (ui.sessionTypes[code] && ui.sessionTypes[code].label) || code;
  }

  // ---------- errors in words a counselor understands ----------

  var FIELD_OF = {
    sessionType: "sessionType", studentId: "students", studentIds: "students", mentorId: "mentor",
    scheduledStartTime: "start", duration: "duration", meetingProvider: "provider", topic: "topic",
  };

  function explain(error) {
    var d = error.details || {};
    switch (error.code) {
      case "SLOT_CONFLICT":
        var conflicts = d.conflicts || [];
        if (!conflicts.length) return gettext("The mentor or a student is already booked at that time.");
        return conflicts.map(function (c) {
          return fill(gettext("%(name)s is already booked from %(start)s to %(end)s (%(zone)s)."), {
            name: personName(c.userId), start: formatWhen(c.start), end: formatTime(c.end), zone: ui.timeZone,
          });
        }).join(" ");
      case "INSUFFICIENT_BALANCE":
        return fill(gettext("%(name)s has no %(type)s sessions left to book (available: %(available)s)."), {
          name: personName(d.studentId), type: typeLabel(d.sessionType), available: d.available || 0,
        });
      case "INVALID_STATE":
        return gettext("This is no longer possible: the session's status has changed. Its latest status is shown.");
      case "NOT_FOUND":
        return gettext("That session, student or mentor no longer exists. Reload the page.");
      case "THROTTLED":
        return fill(gettext("Too many requests in a short time. Try again in %(seconds)s seconds."), {
          seconds: d.retryAfterSeconds || 60,
        });
      case "UNAUTHENTICATED":
        return gettext("Your login has expired. Log in again.");
      case "FORBIDDEN":
        return gettext("You are not allowed to do this. Reload the page and log in again.");
      case "IDEMPOTENCY_KEY_IN_USE":
        return gettext("This booking is still being processed. Wait a moment.");
      case "NETWORK":
        return gettext("The server could not be reached. Check the connection and try again.");
      default:
        return error.message || gettext("Something went wrong. Try again.");
    }
  }

  // Field messages under their fields; anything else at the top of the form.
  function showErrors(form, error) {
    clearErrors(form);
    var general = [];
    if (error.code === "VALIDATION_ERROR") {
      Object.keys(error.details || {}).forEach(function (field) {
        var slot = form.querySelector('[data-error-for="' + (FIELD_OF[field] || field) + '"]');
        var messages = [].concat(error.details[field]).join(" ");
        if (slot) {
          slot.textContent = messages;
          slot.hidden = false;
        } else {
          general.push(messages);
        }
      });
      if (!general.length && !form.querySelector("[data-error-for]:not([hidden])")) general.push(explain(error));
    } else {
      general.push(explain(error));
    }
    var top = form.querySelector("[data-form-error]");
    if (top && general.length) {
      top.textContent = general.join(" ");
      top.hidden = false;
      if (error.code === "SLOT_CONFLICT") offerSuggestions(form, top, (error.details || {}).suggestions);
    }
  }

  // A conflict's next free starts (same people, same duration) as buttons that fill the form's start, date
  // included; the counselor still presses Book (or Save, or Retry) themselves.
  function offerSuggestions(form, top, suggestions) {
    var field = form.elements.start;
    if (!field || !Array.isArray(suggestions) || !suggestions.length) return;
    var day = (field.value || "").slice(0, 10);
    var box = el("span", { class: "suggestions" }, [el("span", { text: gettext("Free nearby:") })]);
    suggestions.forEach(function (suggestion) {
      if (!suggestion || !suggestion.start) return;
      var sameDay = isoToLocalInput(suggestion.start).slice(0, 10) === day;
      var button = el("button", {
        type: "button", class: "secondary suggestion", "data-start": suggestion.start, "aria-pressed": "false",
        text: fill(gettext("Try %(time)s"), {
          time: sameDay ? formatTime(suggestion.start) : formatDayTime(suggestion.start),
        }),
      });
      button.addEventListener("click", function () {
        setStart(field, suggestion.start);
        box.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      });
      box.appendChild(button);
    });
    top.appendChild(document.createTextNode(" "));
    top.appendChild(box);
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for], [data-form-error]").forEach(function (node) {
      node.textContent = "";
      node.hidden = true;
    });
  }

  // ---------- small DOM helpers ----------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "dataset") Object.assign(node.dataset, attrs[key]);
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function badge(status) {
    return el("span", { class: "badge badge-" + status, "data-status": status, text: ui.statuses[status] || status });
  }

  // Why a session waits for an operator, in the words the server chose (see sessions_attention).
  var attentionById = {};

  function attentionNote(session) {
    var words = session.attention || [];
    if (!words.length) return [];
    return [el("div", { class: "attention", role: "status" }, words.map(function (w) { return el("p", { text: w }); }))];
  }

  // The API does not carry the words: fetch them for the shown sessions and keep the last answer.
  function withAttention(sessions) {
    if (!ui.attentionUrl || !sessions.length) return Promise.resolve(sessions);
    var ids = sessions.map(function (s) { return s.sessionId; }).join(",");
    var merge = function () {
      sessions.forEach(function (s) { s.attention = attentionById[s.sessionId] || []; });
      return sessions;
    };
    return api("GET", ui.attentionUrl + "?ids=" + encodeURIComponent(ids)).then(
      function (answer) {
        Object.assign(attentionById, answer.attention || {});
        return merge();
      },
      merge
    );
  }

  function meetingLink(session) {
    return el("a", {
      href: session.meetingUrl, target: "_blank", rel: "noopener", class: "meeting-link", text: session.meetingUrl,
    });
  }

  function copyButton(url) {
    var button = el("button", { type: "button", class: "secondary copy-link", text: gettext("Copy link") });
    button.addEventListener("click", function () {
      copyText(url).then(function () { button.textContent = gettext("Copied"); });
    });
    return button;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return Promise.resolve(legacyCopy(text));
  }

  function legacyCopy(text) {
    var area = el("textarea", { readonly: "", class: "offscreen" });
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }

  // ---------- actions on a session (list rows and the session page) ----------

  var actionsAllowed = {
    cancel: { PENDING_MEETING: 1, SCHEDULED: 1, MEETING_FAILED: 1 },
    reschedule: { SCHEDULED: 1 },
    retry: { MEETING_FAILED: 1 },
    complete: { SCHEDULED: 1, IN_PROGRESS: 1 },
  };

  // A session has begun once it runs or ran, or once its start has passed (the clock moves it to IN_PROGRESS
  // within a minute; the page does not wait for that to stop offering Cancel).
  function begun(session) {
    return session.status === "IN_PROGRESS" || session.status === "COMPLETED" ||
      (session.status === "SCHEDULED" && Date.parse(session.scheduledAt) <= Date.now());
  }

  // Only the counselor who booked a session acts on it (a student's new counselor reads it; the API says 404).
  function mine(session) {
    return session.counselorId === ui.counselorId;
  }

  function actionButtons(session, onChange, onError) {
    var box = el("span", { class: "actions" });
    if (!mine(session)) {
      box.appendChild(el("span", { class: "muted", text: gettext("Booked by another counselor") }));
      return box;
    }
    [
      ["retry", gettext("Retry")],
      ["reschedule", gettext("Reschedule")],
      ["complete", gettext("Mark completed")],
      ["cancel", gettext("Cancel")],
    ].forEach(function (pair) {
      var action = pair[0];
      if (!actionsAllowed[action][session.status]) return;
      // A session can be marked completed once it has started.
      if (action === "complete" && Date.parse(session.scheduledAt) > Date.now()) return;
      // Once it has begun the unit is spent: cancelling or moving it is no longer offered (the API refuses both).
      if ((action === "cancel" || action === "reschedule") && begun(session)) return;
      var button = el("button", {
        type: "button", class: action === "cancel" ? "danger" : "secondary", "data-action": action, text: pair[1],
      });
      button.addEventListener("click", function () {
        if (action === "reschedule") return openReschedule(session, onChange);
        if (action === "retry") return openRetry(session, onChange);
        if (action === "cancel" && !window.confirm(gettext("Cancel this session? The meeting link stops working."))) return;
        button.disabled = true;
        api("POST", sessionUrl(session.sessionId, action)).then(onChange, function (error) {
          button.disabled = false;
          onError(error);
        });
      });
      box.appendChild(button);
    });
    return box;
  }

  var rescheduleDialog = document.getElementById("reschedule-dialog");

  // One dialog, one date and duration picker, for two actions: "reschedule" moves a session, "retry" asks
  // again for a failed session's meeting, at the same time (no body) or at the time picked.
  function openTimeDialog(session, mode, onChange) {
    if (!rescheduleDialog) return;
    var form = rescheduleDialog.querySelector("form");
    clearErrors(form);
    rescheduleDialog.dataset.mode = mode;
    rescheduleDialog.querySelectorAll("[data-mode]").forEach(function (node) {
      node.hidden = node.dataset.mode !== mode;
    });
    form.elements.start.value = isoToLocalInput(session.scheduledAt);
    form.elements.duration.value = session.duration;
    form.onsubmit = function (event) {
      event.preventDefault();
      var choice = event.submitter ? event.submitter.value : "save";
      if (choice === "close") return rescheduleDialog.close();
      var body;
      if (choice !== "same") {
        var start = localInputToIso(form.elements.start.value);
        if (!start) {
          return showErrors(form, { code: "VALIDATION_ERROR", details: { start: [gettext("Choose a date and time.")] } });
        }
        body = { scheduledStartTime: start, duration: Number(form.elements.duration.value) };
      }
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      api("POST", sessionUrl(session.sessionId, mode === "retry" ? "retry" : "reschedule"), body).then(
        function (updated) {
          form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
          rescheduleDialog.close();
          onChange(updated);
        },
        function (error) {
          form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
          showErrors(form, error);
        }
      );
    };
    rescheduleDialog.showModal();
  }

  function openReschedule(session, onChange) {
    openTimeDialog(session, "reschedule", onChange);
  }

  // After a retry the page watches the meeting being made again, like after booking.
  function openRetry(session, onChange) {
    openTimeDialog(session, "retry", function (updated) {
      track(updated);
      onChange(updated);
    });
  }

  // ---------- the sessions list ----------

  var rows = document.getElementById("session-rows");
  var listError = document.getElementById("list-error");
  var sessionsById = {};

  function showListError(error) {
    if (!listError) return;
    listError.textContent = explain(error);
    listError.hidden = false;
    if (error.code === "INVALID_STATE") refreshList(); // show the status that made the action impossible
  }

  function sessionRow(session) {
    var names = session.studentIds.map(personName).join(", ");
    var link = session.meetingUrl ? meetingLink(session) : el("span", { class: "muted", text: "—" });
    var details = el("a", { href: ui.sessionPage.replace("{id}", session.sessionId), text: gettext("Details") });
    var actions = actionButtons(session, replaceSession, showListError);
    actions.insertBefore(details, actions.firstChild);
    return el("tr", { dataset: { sessionId: session.sessionId, status: session.status } }, [
      el("td", { text: formatWhen(session.scheduledAt) }),
      el("td", { text: typeLabel(session.sessionType) }),
      el("td", { text: names }),
      el("td", { text: personName(session.mentorId) }),
      el("td", {}, [badge(session.status)].concat(attentionNote(session))),
      el("td", {}, [link]),
      el("td", {}, [actions]),
    ]);
  }

  // Rows whose session did not change are kept as they are (a button being pressed is not swapped away).
  var rowState = {};

  function rowKey(session) {
    return JSON.stringify(session) + (begun(session) ? " begun" : "");
  }

  function renderList(sessions) {
    if (!rows) return;
    var keep = {};
    rows.querySelectorAll("tr[data-session-id]").forEach(function (tr) { keep[tr.dataset.sessionId] = tr; });
    sessionsById = {};
    var nextState = {};
    sessions.forEach(function (s) {
      var state = rowKey(s);
      var tr = keep[s.sessionId] && rowState[s.sessionId] === state ? keep[s.sessionId] : sessionRow(s);
      if (tr === keep[s.sessionId]) delete keep[s.sessionId]; // else the old row goes below
      sessionsById[s.sessionId] = s;
      nextState[s.sessionId] = state;
      rows.appendChild(tr); // moves a kept row into place
    });
    Object.keys(keep).forEach(function (id) { keep[id].remove(); });
    rowState = nextState;
    var empty = document.getElementById("sessions-empty");
    if (empty) empty.hidden = sessions.length > 0;
  }

  function replaceSession(session) {
    if (listError) listError.hidden = true;
    sessionsById[session.sessionId] = session;
    if (!session.attention) session.attention = attentionById[session.sessionId] || [];
    rowState[session.sessionId] = rowKey(session);
    var old = rows && rows.querySelector('tr[data-session-id="' + session.sessionId + '"]');
    if (old) old.replaceWith(sessionRow(session));
    if (tracked && tracked.id === session.sessionId) showTracked(session);
    refreshList();
  }

  var filters = document.getElementById("filters");

  function listQuery() {
    var params = new URLSearchParams({ pageSize: "50" });
    if (filters) {
      if (filters.elements.status.value) params.set("status", filters.elements.status.value);
      if (filters.elements.type.value) params.set("sessionType", filters.elements.type.value);
    }
    return ui.apiBase + "?" + params.toString();
  }

  var listTimer = null;

  function listWithAttention(page) {
    return withAttention(page.results).then(function () { return page; });
  }

  function refreshList() {
    if (!rows) return;
    clearTimeout(listTimer);
    api("GET", listQuery()).then(listWithAttention).then(
      function (page) {
        renderList(page.results);
        scheduleListRefresh();
      },
      function (error) {
        showListError(error);
        scheduleListRefresh();
      }
    );
  }

  function scheduleListRefresh() {
    clearTimeout(listTimer);
    var pending = Object.keys(sessionsById).some(function (id) { return !FINAL[sessionsById[id].status]; });
    // Quick while a meeting is being created; otherwise slow, to catch changes made elsewhere.
    listTimer = setTimeout(refreshList, pending ? ui.pollMs : 15000);
  }

  if (rows) {
    var firstPaint = JSON.parse(document.getElementById("initial-sessions").textContent);
    firstPaint.forEach(function (s) { attentionById[s.sessionId] = s.attention || []; });
    renderList(firstPaint);
    scheduleListRefresh();
  }

  if (filters) {
    filters.addEventListener("change", function () {
      var params = new URLSearchParams();
      if (filters.elements.status.value) params.set("status", filters.elements.status.value);
      if (filters.elements.type.value) params.set("type", filters.elements.type.value);
      history.replaceState(null, "", "?" + params.toString());
      refreshList();
    });
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      refreshList();
    });
  }

  // ---------- booking, then watching the meeting link arrive ----------

  var bookForm = document.getElementById("book-form");
  var bookingStatus = document.getElementById("booking-status");
  var tracked = null; // {id, since, timer}

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  if (bookForm) {
    var typeSelect = bookForm.elements.sessionType;
    var studentSelect = bookForm.elements.students;
    var idempotencyKey = newIdempotencyKey();

    var syncType = function () {
      var type = ui.sessionTypes[typeSelect.value] || {};
      studentSelect.multiple = !!type.several;
      studentSelect.size = type.several ? Math.min(6, studentSelect.options.length) : 1;
      var hint = document.getElementById("students-hint");
      if (hint) hint.hidden = !type.several;
      if (type.duration && !bookForm.elements.duration.dataset.touched) bookForm.elements.duration.value = type.duration;
    };
    typeSelect.addEventListener("change", syncType);
    bookForm.elements.duration.addEventListener("input", function () {
      bookForm.elements.duration.dataset.touched = "1";
    });
    bookForm.addEventListener("input", function () { idempotencyKey = newIdempotencyKey(); });
    syncType();

    var chosenStudents = function () {
      return Array.prototype.filter.call(studentSelect.options, function (o) { return o.selected && o.value; })
        .map(function (o) { return o.value; });
    };

    // ---------- the chosen day's free times ----------

    var freeBox = document.getElementById("free-times");
    var freeAsked = null; // the last question asked; the same question is not asked again
    var freeSeq = 0; // an answer to an older question never overwrites the current one
    var freeTimer = null;

    var todayInZone = function () {
      var p = zoneParts(new Date());
      return p.year + "-" + p.month + "-" + p.day;
    };

    var nextDay = function (day) {
      var m = day.split("-");
      return new Date(Date.UTC(+m[0], +m[1] - 1, +m[2] + 1)).toISOString().slice(0, 10);
    };

    // The day of the start field (today until one is picked), from its midnight to the next, in the
    // counselor's time zone; null until the people and a bookable duration are chosen.
    var freeQuestion = function () {
      var type = ui.sessionTypes[typeSelect.value] || {};
      var students = chosenStudents();
      var mentor = bookForm.elements.mentor.value;
      var duration = Number(bookForm.elements.duration.value);
      if (!ui.availabilityUrl || !mentor || !students.length) return null;
      if (!(duration >= 15 && duration <= 240 && duration % 1 === 0)) return null;
      var picked = /^\d{4}-\d{2}-\d{2}/.exec(bookForm.elements.start.value || "");
      var day = picked ? picked[0] : todayInZone();
      var from = localInputToIso(day + "T00:00");
      var params = new URLSearchParams({
        mentorId: mentor, duration: String(duration), from: from, to: localInputToIso(nextDay(day) + "T00:00"),
      });
      if (type.several) params.set("studentIds", students.join(","));
      else params.set("studentId", students[0]);
      return { day: day, from: from, url: ui.availabilityUrl + "?" + params.toString() };
    };

    var showFree = function (question, state, answer) {
      freeBox.hidden = false;
      freeBox.dataset.state = state;
      freeBox.dataset.day = question.day;
      document.getElementById("free-times-title").textContent =
        fill(gettext("Free times on %(day)s"), { day: formatDay(question.from) });
      var note = document.getElementById("free-times-state");
      var slots = document.getElementById("free-times-slots");
      var calendars = document.getElementById("free-times-calendars");
      slots.textContent = "";
      note.className = state === "error" ? "hint error-note" : "hint";
      note.textContent = {
        loading: gettext("Looking for free times…"),
        empty: gettext("No free time that day for everyone"),
        error: gettext("Free times could not be loaded. You can still book any time."),
      }[state] || "";
      note.hidden = !note.textContent;
      calendars.hidden = !(answer && answer.calendarsChecked && answer.calendarsChecked.length);
      calendars.textContent = calendars.hidden ? "" : gettext("Checked the mentor's calendar");
      ((answer && answer.slots) || []).forEach(function (slot) {
        var button = el("button", {
          type: "button", class: "secondary free-time", "data-start": slot.start, text: formatTime(slot.start),
        });
        button.addEventListener("click", function () {
          clearErrors(bookForm);
          setStart(bookForm.elements.start, slot.start);
        });
        slots.appendChild(button);
      });
      markChosenTime();
    };

    var markChosenTime = function () {
      var value = bookForm.elements.start.value;
      freeBox.querySelectorAll("button.free-time").forEach(function (b) {
        b.setAttribute("aria-pressed", String(isoToLocalInput(b.dataset.start) === value));
      });
    };

    var askFreeTimes = function (again) {
      var question = freeQuestion();
      if (!question) {
        freeSeq += 1;
        freeAsked = null;
        freeBox.hidden = true;
        return;
      }
      if (!again && question.url === freeAsked) return markChosenTime();
      freeAsked = question.url;
      var seq = (freeSeq += 1);
      showFree(question, "loading");
      api("GET", question.url).then(
        function (answer) {
          if (seq !== freeSeq) return;
          showFree(question, answer.slots && answer.slots.length ? "ready" : "empty", answer);
        },
        function () {
          if (seq !== freeSeq) return;
          freeAsked = null; // the next change asks again
          showFree(question, "error");
        }
      );
    };

    // Every keystroke or pick waits a moment, so a counselor choosing several things asks once; meanwhile the
    // previous choice's times are no longer offered, nor its answer awaited.
    var askFreeTimesSoon = function (again) {
      clearTimeout(freeTimer);
      var question = freeQuestion();
      if (!question || (!again && question.url === freeAsked)) return askFreeTimes(false);
      freeSeq += 1;
      freeAsked = null;
      showFree(question, "loading");
      freeTimer = setTimeout(function () { askFreeTimes(true); }, 300);
    };

    if (freeBox) {
      bookForm.addEventListener("input", function () { askFreeTimesSoon(false); });
      bookForm.addEventListener("change", function () { askFreeTimesSoon(false); });
      askFreeTimes(false);
    } else {
      askFreeTimesSoon = function () {};
    }

    bookForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors(bookForm);
      var type = ui.sessionTypes[typeSelect.value] || {};
      var chosen = chosenStudents();
      var body = {
        sessionType: typeSelect.value,
        mentorId: bookForm.elements.mentor.value,
        duration: Number(bookForm.elements.duration.value),
        meetingProvider: bookForm.elements.provider.value,
        topic: bookForm.elements.topic.value,
      };
      var start = localInputToIso(bookForm.elements.start.value);
      var missing = {};
      if (!start) missing.start = [gettext("Choose a date and time.")];
      if (!chosen.length) missing.students = [type.several ? gettext("Choose at least one student.") : gettext("Choose a student.")];
      if (!body.mentorId) missing.mentor = [gettext("Choose a mentor.")];
      if (!bookForm.elements.duration.value) missing.duration = [gettext("Give the duration in minutes.")];
      if (Object.keys(missing).length) return showErrors(bookForm, { code: "VALIDATION_ERROR", details: missing });
      body.scheduledStartTime = start;
      if (type.several) body.studentIds = chosen;
      else body.studentId = chosen[0];

      var submit = bookForm.querySelector("button[type=submit]");
      submit.disabled = true;
      api("POST", ui.apiBase + "/book", body, { "Idempotency-Key": idempotencyKey }).then(
        function (session) {
          submit.disabled = false;
          idempotencyKey = newIdempotencyKey();
          track(session);
          refreshList();
          askFreeTimesSoon(true); // the time just booked is no longer free
        },
        function (error) {
          submit.disabled = false;
          if (error.code !== "NETWORK" && error.code !== "IDEMPOTENCY_KEY_IN_USE") idempotencyKey = newIdempotencyKey();
          showErrors(bookForm, error);
          if (error.code === "SLOT_CONFLICT") askFreeTimesSoon(true);
        }
      );
    });
  }

  // The session page tracks its own session when it is still being provisioned.
  var sessionState = document.getElementById("session-state");

  function track(session) {
    if (tracked) {
      clearTimeout(tracked.timer);
      clearTimeout(tracked.patience);
    }
    tracked = { id: session.sessionId, since: Date.now(), timer: null, slow: false, latest: session };
    // Said when the patience runs out, whenever the next poll answers.
    tracked.patience = setTimeout(function () {
      if (tracked && tracked.latest.status === "PENDING_MEETING") showTracked(tracked.latest);
    }, ui.patienceSeconds * 1000);
    showTracked(session);
  }

  // What a fresh copy of the tracked session changes: its row in the list and the status panel. The session
  // page replaces this to also redraw its badge and actions.
  var onSession = function (session) {
    if (rows && sessionsById[session.sessionId]) {
      var row = rows.querySelector('tr[data-session-id="' + session.sessionId + '"]');
      if (!session.attention) session.attention = attentionById[session.sessionId] || [];
      sessionsById[session.sessionId] = session;
      rowState[session.sessionId] = rowKey(session);
      if (row) row.replaceWith(sessionRow(session));
    }
    showTracked(session);
  };

  function poll() {
    if (!tracked) return;
    var id = tracked.id;
    api("GET", sessionUrl(id)).then(
      function (session) {
        if (tracked && tracked.id === id) onSession(session);
      },
      function () {
        if (tracked && tracked.id === id) tracked.timer = setTimeout(poll, ui.pollMs);
      }
    );
  }

  function showTracked(session) {
    var target = bookingStatus || sessionState;
    if (!target || !tracked || tracked.id !== session.sessionId) return;
    clearTimeout(tracked.timer);
    tracked.latest = session;
    if (session.status === "PENDING_MEETING") {
      var waited = (Date.now() - tracked.since) / 1000;
      tracked.slow = waited >= ui.patienceSeconds - 0.05;
      // Keep looking after the patience runs out, only less often: the session stays listed meanwhile.
      tracked.timer = setTimeout(poll, tracked.slow ? Math.max(ui.pollMs, 10000) : ui.pollMs);
    }
    renderState(target, session, tracked.slow);
  }

  function renderState(target, session, slow) {
    target.hidden = false;
    target.textContent = "";
    target.dataset.status = session.status;
    var message = el("p", { class: "state-message", id: "state-message" });
    target.appendChild(message);
    if (session.status === "PENDING_MEETING") {
      message.className += slow ? " slow" : " pending";
      message.textContent = slow
        ? gettext("This is taking longer than usual — refresh later.")
        : gettext("Creating the meeting link…");
      if (!slow) message.insertBefore(el("span", { class: "spinner", "aria-hidden": "true" }), message.firstChild);
    } else if ((session.status === "SCHEDULED" || session.status === "IN_PROGRESS") && session.meetingUrl) {
      message.className += " ok";
      message.textContent = (session.status === "IN_PROGRESS"
        ? gettext("In progress. Meeting link:") : gettext("Scheduled. Meeting link:")) + " ";
      message.appendChild(meetingLink(session));
      message.appendChild(document.createTextNode(" "));
      message.appendChild(copyButton(session.meetingUrl));
    } else if (session.status === "MEETING_FAILED") {
      message.className += " failed";
      message.textContent = fill(gettext("The meeting could not be created: %(reason)s"), {
        reason: session.failureReason || gettext("the provider did not answer"),
      });
      if (mine(session)) {
        var retry = el("button", { type: "button", "data-action": "retry", id: "state-retry", text: gettext("Retry") });
        retry.addEventListener("click", function () {
          openRetry(session, function (updated) {
            onSession(updated);
            if (rows) refreshList();
          });
        });
        message.appendChild(document.createTextNode(" "));
        message.appendChild(retry);
      }
    } else {
      message.textContent = fill(gettext("Status: %(status)s"), { status: ui.statuses[session.status] || session.status });
    }
    if (bookingStatus && target === bookingStatus) {
      target.appendChild(el("p", {}, [
        el("a", { href: ui.sessionPage.replace("{id}", session.sessionId), id: "state-details", text: gettext("Open this session") }),
      ]));
    }
  }

  // ---------- the session page ----------

  if (sessionState) {
    var initial = JSON.parse(document.getElementById("initial-sessions").textContent)[0];
    var actionsBox = document.getElementById("session-actions");
    var actionError = document.getElementById("action-error");
    var showSession = function (session) {
      if (actionError) actionError.hidden = true;
      var statusNode = document.getElementById("session-status");
      statusNode.textContent = "";
      statusNode.appendChild(badge(session.status));
      var when = document.getElementById("session-when");
      if (when) when.textContent = formatWhen(session.scheduledAt) + " (" + session.duration + " min)";
      [["session-started", session.startedAt], ["session-ended", session.endedAt]].forEach(function (pair) {
        var value = document.getElementById(pair[0]);
        var label = document.getElementById(pair[0] + "-label");
        if (!value) return;
        value.textContent = pair[1] ? formatWhen(pair[1]) : "";
        value.hidden = !pair[1];
        if (label) label.hidden = !pair[1];
      });
      if (!session.attention) session.attention = attentionById[session.sessionId] || [];
      var attentionBox = document.getElementById("session-attention");
      if (attentionBox) {
        attentionBox.textContent = "";
        session.attention.forEach(function (w) { attentionBox.appendChild(el("p", { text: w })); });
        attentionBox.hidden = !session.attention.length;
      }
      if (actionsBox) {
        actionsBox.textContent = "";
        actionsBox.appendChild(actionButtons(session, showSession, function (error) {
          var say = function () {
            actionError.textContent = explain(error);
            actionError.hidden = false;
          };
          api("GET", sessionUrl(session.sessionId)).then(function (fresh) { showSession(fresh); say(); }, say);
        }));
      }
      if (!tracked || tracked.id !== session.sessionId) track(session);
      else showTracked(session);
      schedulePageRefresh(session);
    };
    // The page keeps up with what happens without the counselor: the clock or the provider starting and
    // ending the session, an operator being asked to act. Slowly, and right when the start comes (Cancel goes).
    var pageTimer = null;
    var schedulePageRefresh = function (session) {
      clearTimeout(pageTimer);
      if (session.status === "PENDING_MEETING") return; // the tracker polls it quickly meanwhile
      var wait = 15000;
      var untilStart = Date.parse(session.scheduledAt) - Date.now();
      if (untilStart > 0 && untilStart < wait) wait = untilStart + 250;
      pageTimer = setTimeout(function () {
        api("GET", sessionUrl(session.sessionId)).then(function (fresh) {
          return withAttention([fresh]).then(function () { showSession(fresh); });
        }, function () { schedulePageRefresh(session); });
      }, wait);
    };
    onSession = function (session) {
      withAttention([session]).then(function () { showSession(session); });
    };
    attentionById[initial.sessionId] = initial.attention || [];
    showSession(initial);
  }

  // ---------- the language switch submits itself ----------

  var languageSelect = document.querySelector("#language-form select");
  if (languageSelect) {
    languageSelect.addEventListener("change", function () { languageSelect.form.submit(); });
  }
})();
