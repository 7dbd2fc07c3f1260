// wacampaign console: small enhancements over pages that work without them.
// Times in the viewer's zone, live updates, the contacts file's columns read
// in the browser, drag and drop, and adding sequence steps.
(function () {
  'use strict';

  var zone = '';
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { zone = ''; }
  var timeFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short'
  });

  // The server writes times in UTC and says so; show them in the viewer's
  // zone, named, with the exact UTC time on hover.
  function localiseTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (el) {
      var d = new Date(el.getAttribute('datetime'));
      if (isNaN(d.getTime())) { return; }
      el.title = el.getAttribute('datetime');
      el.textContent = timeFormat.format(d);
    });
  }

  // Forms that take a local time send the browser's zone with it.
  function fillZones(root) {
    root.querySelectorAll('[data-tz]').forEach(function (el) { el.value = zone; });
    root.querySelectorAll('[data-tz-name]').forEach(function (el) { el.textContent = zone || 'UTC'; });
  }

  // Live parts: an element with data-live names an event stream of the
  // console whose "fragments" events carry HTML by element id, rendered by
  // the server like the page itself. A part is replaced only when it
  // changed (so focus and selection stay where they are), and a part whose
  // confirmation the user has open is left alone until it is closed.
  var liveUpdates = 0;
  function render(html) {
    var t = document.createElement('template');
    t.innerHTML = html;
    localiseTimes(t.content);
    fillZones(t.content);
    return t;
  }
  function follow(el) {
    var stream = new EventSource(el.getAttribute('data-live'));
    stream.addEventListener('fragments', function (e) {
      var parts = JSON.parse(e.data);
      Object.keys(parts).forEach(function (id) {
        var target = document.getElementById(id);
        if (!target || target.querySelector('details[open]')) { return; }
        var next = render(parts[id]);
        if (next.innerHTML === target.innerHTML) { return; }
        target.replaceChildren(next.content);
      });
      liveUpdates++;
      document.documentElement.setAttribute('data-live-updates', String(liveUpdates));
    });
    stream.addEventListener('end', function () {
      stream.close();
      document.documentElement.setAttribute('data-live-ended', 'true');
    });
  }

  // The contacts file: its header is read here to show the phone column and
  // the fields, which become buttons that insert {{.field}} in the message.
  // It mirrors the server's rules (internal/campaign/csvinput.go and
  // internal/templating/columns.go), which decide in the end.
  var phoneNames = ['phone', 'phone_number', 'mobile', 'mobile_number', 'mobile_phone', 'cell', 'cell_phone',
    'whatsapp', 'whatsapp_number', 'whatsapp_phone', 'msisdn', 'telephone', 'tel', 'number'];

  function normaliseColumn(h) {
    return h.normalize('NFC').trim().toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '_').replace(/^_+|_+$/g, '');
  }

  // splitHeader splits the first line of a CSV on the delimiter that occurs
  // most outside quotes (comma, semicolon or tab).
  function splitHeader(line) {
    var counts = { ',': 0, ';': 0, '\t': 0 };
    var quoted = false, i, ch;
    for (i = 0; i < line.length; i++) {
      ch = line[i];
      if (ch === '"') { quoted = !quoted; } else if (!quoted && ch in counts) { counts[ch]++; }
    }
    var delim = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; })[0];
    var cells = [], cell = '';
    quoted = false;
    for (i = 0; i < line.length; i++) {
      ch = line[i];
      if (ch === '"') {
        if (quoted && line[i + 1] === '"') { cell += '"'; i++; } else { quoted = !quoted; }
      } else if (ch === delim && !quoted) { cells.push(cell); cell = ''; } else { cell += ch; }
    }
    cells.push(cell);
    return cells;
  }

  function readHeader(file, done) {
    file.slice(0, 65536).text().then(function (text) {
      var line = text.replace(/^\uFEFF/, '').split(/\r?\n/)[0] || '';
      var columns = splitHeader(line).map(normaliseColumn).filter(function (c) { return c !== ''; });
      var phone = '';
      phoneNames.some(function (n) { if (columns.indexOf(n) >= 0) { phone = n; return true; } return false; });
      // A row is addressed by its phone, jid (a contact or a group) or
      // chat_id column, the first one filled (internal/campaign/address.go).
      var keys = (phone ? [phone] : []).concat(['jid', 'chat_id'].filter(function (k) { return columns.indexOf(k) >= 0; }));
      done({ columns: columns, phone: phone, keys: keys, fields: columns.filter(function (c) { return keys.indexOf(c) < 0; }) });
    });
  }

  function countRows(file, done) {
    if (file.size > 20 * 1024 * 1024) { done(-1); return; }
    file.text().then(function (text) {
      var lines = text.split(/\r?\n/).filter(function (l) { return l.trim() !== ''; });
      done(Math.max(0, lines.length - 1));
    });
  }

  // fieldsUsed lists the columns a template names: {{.city}}, {{index . "x"}}.
  function fieldsUsed(template) {
    var used = {}, m;
    var dot = /\{\{[^}]*?\.([\p{L}\p{N}_]+)/gu;
    while ((m = dot.exec(template)) !== null) {
      if (m[1] !== 'campaign') { used[m[1]] = true; }
    }
    var index = /index\s+\.\s+"([^"]+)"/g;
    while ((m = index.exec(template)) !== null) { used[m[1]] = true; }
    return Object.keys(used);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function newCampaign(form) {
    var input = form.querySelector('#contacts');
    var zoneEl = form.querySelector('[data-dropzone]');
    var detected = form.querySelector('[data-detected]');
    var chips = form.querySelector('[data-chips]');
    var textarea = form.querySelector('#template');
    var shipped = form.querySelector('[data-shipped]');
    var checks = form.querySelector('[data-check-list]');
    var header = null;

    function templateText() {
      if (shipped && shipped.value) {
        var pre = form.querySelector('[data-shipped-text="' + shipped.value + '"] pre');
        return pre ? pre.textContent : '';
      }
      return textarea.value;
    }

    function check() {
      if (!checks) { return; }
      checks.innerHTML = '';
      function item(ok, text) { checks.appendChild(el('li', ok ? 'ok' : 'warn', text)); }
      if (!header) { return; }
      if (header.phone) {
        item(true, 'The file has a phone column: ' + header.phone + '.');
      } else if (header.keys.length) {
        item(true, 'Recipients are addressed by ' + header.keys.join(' and ') + '.');
      } else {
        item(false, 'No column says whom to send to: name one phone (or mobile, whatsapp, another of ' + phoneNames.join(', ') +
          '), jid or chat_id.');
      }
      var text = templateText();
      if (text.trim() === '') { item(false, 'The message is empty: write it, or choose a shipped template.'); return; }
      var missing = fieldsUsed(text).filter(function (f) { return header.columns.indexOf(f) < 0; });
      if (missing.length) {
        item(false, 'The message uses ' + missing.join(', ') + ', which the file lacks (it has ' + header.columns.join(', ') + '). Fix the message or the file.');
      } else {
        item(true, 'Every column the message uses is in the file.');
      }
    }

    function showFile(file) {
      readHeader(file, function (h) {
        header = h;
        detected.hidden = false;
        detected.innerHTML = '';
        var p = el('p');
        p.appendChild(el('strong', '', file.name));
        var others = h.keys.filter(function (k) { return k !== h.phone; });
        p.appendChild(document.createTextNode(' · phone column: ' + (h.phone || 'none found') +
          (others.length ? ' · also addressed by: ' + others.join(', ') : '') +
          ' · fields: ' + (h.fields.length ? h.fields.join(', ') : 'none')));
        var rows = el('span', 'muted');
        p.appendChild(rows);
        detected.appendChild(p);
        countRows(file, function (n) { rows.textContent = n < 0 ? ' · a large file' : ' · about ' + n.toLocaleString() + ' rows'; });
        chips.querySelectorAll('button').forEach(function (b) { b.remove(); });
        h.fields.forEach(function (f) {
          var b = el('button', '', '{{.' + f + '}}');
          b.type = 'button';
          b.setAttribute('aria-label', 'Insert the field ' + f + ' into the message');
          b.addEventListener('click', function () { insert(textarea, '{{.' + f + '}}'); check(); });
          chips.appendChild(b);
        });
        chips.hidden = h.fields.length === 0;
        check();
      });
    }

    input.addEventListener('change', function () { if (input.files.length) { showFile(input.files[0]); } });
    ['dragenter', 'dragover'].forEach(function (t) {
      zoneEl.addEventListener(t, function (e) { e.preventDefault(); zoneEl.classList.add('over'); });
    });
    ['dragleave', 'drop'].forEach(function (t) {
      zoneEl.addEventListener(t, function () { zoneEl.classList.remove('over'); });
    });
    zoneEl.addEventListener('drop', function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        showFile(input.files[0]);
      }
    });

    function onShipped() {
      var name = shipped.value;
      textarea.disabled = name !== '';
      form.querySelectorAll('[data-shipped-text]').forEach(function (d) {
        d.hidden = name !== '' && d.getAttribute('data-shipped-text') !== name;
        d.open = d.getAttribute('data-shipped-text') === name;
      });
      check();
    }
    if (shipped) {
      shipped.addEventListener('change', onShipped);
      onShipped();
      form.querySelectorAll('[data-copy-template]').forEach(function (b) {
        b.hidden = false;
        b.addEventListener('click', function () {
          var pre = form.querySelector('[data-shipped-text="' + b.getAttribute('data-copy-template') + '"] pre');
          shipped.value = '';
          onShipped();
          textarea.value = pre ? pre.textContent : '';
          textarea.focus();
          check();
        });
      });
    }
    textarea.addEventListener('input', check);
    if (input.files.length) { showFile(input.files[0]); }
  }

  function insert(textarea, text) {
    var start = textarea.selectionStart, end = textarea.selectionEnd;
    textarea.value = textarea.value.slice(0, start) + text + textarea.value.slice(end);
    textarea.selectionStart = textarea.selectionEnd = start + text.length;
    textarea.focus();
  }

  // A draft's edit form: the columns, as buttons that insert them into the
  // message (hidden without script, where they could do nothing).
  function chipsFor(box) {
    var target = document.getElementById(box.getAttribute('data-chips-for'));
    if (!target) { return; }
    box.hidden = false;
    box.querySelectorAll('[data-insert]').forEach(function (b) {
      b.addEventListener('click', function () { insert(target, b.getAttribute('data-insert')); });
    });
  }

  // The new-sequence form: "Add a step" copies the empty row.
  function sequenceForm(form) {
    var add = form.querySelector('[data-add-step]');
    var tmpl = form.querySelector('[data-step-template]');
    var rows = form.querySelector('[data-steps]');
    if (!add || !tmpl || !rows) { return; }
    add.hidden = false;
    add.addEventListener('click', function () {
      var n = rows.querySelectorAll('[data-step-row]').length;
      if (n >= 20) { add.disabled = true; return; }
      var html = tmpl.innerHTML.split('__i__').join(String(n));
      rows.insertAdjacentHTML('beforeend', html);
      var row = rows.lastElementChild;
      row.querySelector('[data-step-n]').textContent = String(n + 1);
      row.querySelector('input').focus();
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    localiseTimes(document);
    fillZones(document);
    document.querySelectorAll('[data-live]').forEach(follow);
    document.querySelectorAll('[data-new-campaign]').forEach(newCampaign);
    document.querySelectorAll('[data-sequence-form]').forEach(sequenceForm);
    document.querySelectorAll('[data-chips-for]').forEach(chipsFor);
  });
}());
