// The swarm dashboard: fills the page shell from the view's JSON twin and draws Vega-Lite charts.
// Nothing is loaded from outside the page's own origin. In a report (`swarm report`), the data
// is embedded in the page (window.SWARM_REPORT) and every view is drawn one after the other.
"use strict";
var swarmDashboard = (function () {
  var boot = null;
  var invisible = null;     // characters that read otherwise than they show (boot.invisible)

  // Every string shown goes through here: any author's text, with each invisible or reordering
  // character (a bidi override, a zero-width space) shown as U+FFFD.
  function visible(text) { return invisible ? text.replace(invisible, "\ufffd") : text; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(visible(c)) : c);
    });
    return node;
  }

  function num(v, digits) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    return v.toFixed(digits === undefined ? 4 : digits);
  }

  // p and q values: small ones in exponent form (4 decimals would show 0.0000).
  function pval(v) {
    if (v === null || v === undefined) return "";
    return v < 0.001 ? v.toExponential(2) : v.toFixed(4);
  }

  function when(ms) {
    if (!ms) return "";
    return new Date(ms).toISOString().slice(5, 16).replace("T", " ");
  }

  // Axis titles and time labels: units said, and a 24-hour UTC clock as in the tables (Vega's
  // default, "03 PM" and "03:15", reads as the morning).
  var BPB = "val_bpb (bits per byte; lower is better)";
  var TIME = {format: "%m-%d %H:%M", labelOverlap: "greedy", labelSeparation: 6, tickCount: 6};

  function cut(text, n) { return text.length > n ? text.slice(0, n - 1) + "\u2026" : text; }

  function short(id) { return id ? String(id).slice(0, 8) : ""; }

  // a peer id: its tail, as the CLI's tables show it (every Ed25519 id begins 12D3KooW)
  function peer(id) { return id ? "\u2026" + String(id).slice(-8) : ""; }

  // the same, as a node that never wraps after its "…" (narrow tables broke it there)
  function peerTag(id) { return el("span", {"class": "peer"}, [peer(id)]); }

  // a node's name (`node-2`) on one line: at a phone's width it broke after its "-"; a long
  // one (over LONG_CELL) still breaks, as any long cell does, rather than widen the table
  function nameTag(name) {
    var text = name === null || name === undefined ? "" : String(name);
    return text.length > LONG_CELL ? text : el("span", {"class": "peer"}, [text]);
  }

  function diffText(diff) {
    var keys = Object.keys(diff || {});
    return keys.length ? keys.map(function (k) { return k + "=" + JSON.stringify(diff[k]); }).join(", ")
                       : "(base)";
  }

  // A standing, or any text saying data does not count here: red where it does not.
  function marked(text, bad) {
    return bad ? el("span", {"class": "untrusted"}, [text]) : text;
  }

  function untrusted(status) { return status === "untrusted" || status === "distrusted"; }

  function link(path, text) {
    if (boot.report) {           // a report holds claim pages, not run pages
      return path.indexOf("claims/") === 0 ? el("a", {href: "#" + path.replace(/\//g, "-")}, [text])
                                          : el("span", {}, [text]);
    }
    return el("a", {href: boot.root + path}, [text]);
  }

  // A cell of more characters than this may break inside a word (app.css td.long).
  var LONG_CELL = 40;

  // A table; each cell may be a string/node or {text, value, key} (value kept in data-value).
  function table(columns, rows, name) {
    var head = el("tr", {}, columns.map(function (c) { return el("th", {}, [c]); }));
    var body = rows.map(function (r) {
      return el("tr", {}, r.map(function (cell, i) {
        if (cell && typeof cell === "object" && !(cell instanceof Node)) {
          var attrs = {"data-key": cell.key || columns[i]};
          if (cell.value !== undefined && cell.value !== null) attrs["data-value"] = String(cell.value);
          return el("td", attrs, [cell.text]);
        }
        var long = typeof cell === "string" && cell.length > LONG_CELL;
        return el("td", long ? {"class": "long"} : {}, [cell === null || cell === undefined ? "" : cell]);
      }));
    });
    var parts = [el("thead", {}, [head]), el("tbody", {}, body)];
    if (!rows.length) {          // an empty table says so instead of showing bare headers
      parts.push(el("tfoot", {}, [el("tr", {}, [el("td", {colspan: String(columns.length),
                                                          "class": "empty"}, ["none yet"])])]));
    }
    var t = el("table", {"data-table": name || ""}, parts);
    makeSortable(t);
    return t;
  }

  function makeSortable(t) {
    var heads = t.querySelectorAll("th");
    heads.forEach(function (th, i) {
      th.addEventListener("click", function () {
        var rows = Array.prototype.slice.call(t.tBodies[0].rows);
        var dir = th.getAttribute("data-sort") === "asc" ? -1 : 1;
        heads.forEach(function (h) { h.removeAttribute("data-sort"); });
        th.setAttribute("data-sort", dir > 0 ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = a.cells[i].getAttribute("data-value") || a.cells[i].textContent;
          var y = b.cells[i].getAttribute("data-value") || b.cells[i].textContent;
          var nx = parseFloat(x), ny = parseFloat(y);
          if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
          return dir * String(x).localeCompare(String(y));
        });
        rows.forEach(function (r) { t.tBodies[0].appendChild(r); });
      });
    });
  }

  // Vega draws a chart's text (axis labels, legends, tooltips), not el(): any author's strings
  // in its data (a finding's knob names, a config's) get visible() here. A knob named with a
  // bidi override read in the axis as another knob, while the table below showed U+FFFD.
  function visibleData(spec) {
    if (spec.data && spec.data.values) {
      spec.data.values = spec.data.values.map(function (v) {
        var out = {};
        Object.keys(v).forEach(function (k) {
          out[k] = typeof v[k] === "string" ? visible(v[k]) : v[k]; });
        return out;
      });
    }
    (spec.layer || []).forEach(visibleData);
  }

  function chart(target, spec) {
    visibleData(spec);
    var box = el("div", {"class": "chart"});
    target.appendChild(box);
    spec.$schema = undefined;
    spec.width = spec.width || "container";
    spec.background = "transparent";
    // On a narrow screen the legends go below the plot, which keeps the whole width.
    if (window.innerWidth < 600) spec.config = {legend: {orient: "bottom", direction: "vertical"}};
    return vegaEmbed(box, spec, {actions: false, renderer: "svg"}).catch(function (err) {
      box.textContent = "chart failed: " + err;
      throw err;
    });
  }

  function section(title, children) {
    return el("section", {}, [el("h2", {}, [title])].concat(children || []));
  }

  function empty(text) { return el("p", {"class": "empty"}, [text]); }

  // Strangers' rows beyond the newest 100 of a list are left out (swarm/web/views.py
  // MAX_STRANGERS): keys are free. Says how many, and where they all are.
  function omitted(n, what, where) {
    return n ? [el("p", {"class": "empty omitted"}, [count(n, "more " + what) + " by authors " +
                "not trusted here left out: the newest 100 are shown (" + where +
                " lists them all)"])] : [];
  }
  function count(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  // ---- views ---------------------------------------------------------------------------------

  function trackPicker(data, view) {
    if (boot.report || !data.tracks || data.tracks.length < 2) return el("span", {});
    var select = el("select", {id: "track"}, data.tracks.map(function (t) {
      var o = el("option", {value: t.track}, [t.label + " (" + count(t.runs, "run") + ")"]);
      if (t.track === data.track) o.selected = true;
      return o;
    }));
    select.addEventListener("change", function () {
      window.location.search = "?track=" + encodeURIComponent(select.value);
    });
    return select;
  }

  // What the swarm found, in one sentence: the verified best against the baseline's noise.
  function headline(data, best) {
    var b = data.baseline, top = best[best.length - 1];
    // a report is a file: it never updates, and the node that wrote it has no runs
    var text = !data.track ? (boot.report ? "Nothing yet: the memory this report was made from " +
                                            "had no runs." :
                              "Nothing yet: this node has no runs. Join a swarm (swarm join) or " +
                              "wait for records to arrive; this page updates by itself.")
      : !b ? "No baseline yet: a claim is judged against the base config's noise, which needs " +
             "two of its runs that count here."
      : !top || top.what === "baseline" ? "No verified improvement yet: the best is the " +
             "baseline, " + num(b.mean) + " \u00b1 " + num(b.std) + " val_bpb (" + count(b.n, "seed") + ")."
      : "Verified best: " + top.what + ", " + num(top.val_bpb) + " val_bpb on its claim's " +
        "evidence (the leaderboard's mean takes in every later run), " +
        num(b.mean - top.val_bpb) + " below the baseline " + num(b.mean) + " (" +
        (b.std ? num((b.mean - top.val_bpb) / b.std, 1) + " noise sds; " : "") + b.n +
        " baseline seeds). Verified: supported by the test here and confirmed by trusted " +
        "fresh seeds of others.";
    return el("p", {"class": "headline" + (top && top.what !== "baseline" ? "" : " none"),
                    id: "headline"}, [text]);
  }

  function overview(data, main) {
    var label = (data.tracks || []).filter(function (t) { return t.track === data.track; });
    main.appendChild(el("h1", {}, ["Overview: " + (label.length ? label[0].label : "no runs yet"),
                                   " ", trackPicker(data, "overview")]));
    var c = data.counts || {};
    var claims = c.claims || {}, others = c.untrusted_claims || {};
    function tally(t) {
      return Object.keys(t).map(function (k) { return t[k] + " " + k; }).join(", ") || "none";
    }
    main.appendChild(el("p", {"class": "counts"}, [
      count(c.runs || 0, "run") + "; " + count((data.peers || []).length, "node") +
      "; claims (as derived here): " +
      tally(claims) + (Object.keys(others).length ? "; untrusted claims: " + tally(others) : "") +
      (data.baseline ? "; baseline " + num(data.baseline.mean) + " ± " + num(data.baseline.std) +
       " (" + count(data.baseline.n, "seed") + ")" : "; no baseline yet")]));
    var best = data.best || [];
    main.appendChild(headline(data, best));
    var s = section("Verified best over time", []);
    main.appendChild(s);
    if (!data.marks.length) { s.appendChild(empty("no finished runs yet")); }
    else {
      var end = Math.max.apply(null, data.marks.concat(data.claims).map(function (m) {
        return m.ts; }));
      // Both axes span what counts here (from data.since; the counted runs' val_bpb): marks
      // outside, a stranger's word (a run stamped in 1970, a val_bpb of 7.9), are clipped.
      // A little room left and right too: the newest run's mark sat on the edge, cut in half.
      var start = data.since ? data.since : Math.min.apply(null, data.marks.map(function (m) {
        return m.ts; }));
      var room = 0.02 * (end - start) || 60000;
      var time = {type: "utc", domain: [start - room, end + room]};
      var counted = data.marks.filter(function (m) { return m.counts; }).map(function (m) {
        return m.val_bpb; }).concat(best.map(function (b) { return b.val_bpb; }));
      // A little room above and below, so a claim's triangle at the best is not cut in half.
      var lo = Math.min.apply(null, counted), hi = Math.max.apply(null, counted);
      var pad = 0.05 * (hi - lo) || 0.001;
      var bpb = counted.length ? {zero: false, nice: false, domain: [lo - pad, hi + pad]}
                               : {zero: false};
      var steps = best.concat(best.length ? [{ts: end, val_bpb: best[best.length - 1].val_bpb,
                                              what: "now"}] : []);
      chart(s, {height: 260, layer: [
        {data: {values: data.marks.map(function (m) {
           return {ts: m.ts, val_bpb: m.val_bpb, purpose: m.purpose,
                   evidence: m.counts ? "counts here" : "does not count"}; })},
         mark: {type: "point", opacity: 0.45, size: 30, clip: true},
         encoding: {x: {field: "ts", type: "temporal", title: "time (UTC)", scale: time, axis: TIME},
                    y: {field: "val_bpb", type: "quantitative", scale: bpb, title: BPB},
                    color: {field: "purpose", type: "nominal", title: "run"},
                    shape: {field: "evidence", type: "nominal", title: "evidence",
                            scale: {domain: ["counts here", "does not count"],
                                    range: ["circle", "cross"]}},
                    tooltip: [{field: "purpose"}, {field: "val_bpb"}, {field: "evidence"}]}},
        {data: {values: data.claims.filter(function (x) { return x.val_bpb !== null; }).map(
           function (x) { return {ts: x.ts, val_bpb: x.val_bpb, claim: x.claim, effect: x.effect,
                                  status: x.trusted ? x.status : "untrusted: " + x.status}; })},
         mark: {type: "point", shape: "triangle-up", size: 140, filled: false, strokeWidth: 2,
                clip: true},
         encoding: {x: {field: "ts", type: "temporal", scale: time},
                    y: {field: "val_bpb", type: "quantitative", scale: bpb},
                    stroke: {field: "status", type: "nominal", title: "claim"},
                    tooltip: [{field: "status"}, {field: "effect"}, {field: "claim"}]}},
        {data: {values: steps}, mark: {type: "line", interpolate: "step-after", strokeWidth: 2.5,
                                       color: "#0a7", clip: true},
         encoding: {x: {field: "ts", type: "temporal", scale: time},
                    y: {field: "val_bpb", type: "quantitative", scale: bpb},
                    tooltip: [{field: "what"}, {field: "val_bpb"}]}}]});
    }
    // nothing verified: a sentence, as other empty sections say, not a table of the baseline
    var verified = best.some(function (b) { return b.what !== "baseline"; });
    var bests = section("Verified best, step by step", [verified ? table(["when", "val_bpb",
      "what"], best.map(function (b) {
        return [when(b.ts), {text: num(b.val_bpb), value: b.val_bpb, key: "val_bpb"}, b.what];
      }), "best") : empty("nothing verified yet" + (data.baseline ? "; the best is the " +
        "baseline, " + num(data.baseline.mean) + " val_bpb" : ""))]);
    main.appendChild(bests);
    var claimRows = (data.claims || []).slice().reverse().map(function (x) {
      return [link("claims/" + x.claim, short(x.claim)), when(x.ts), x.status,
              marked(x.trusted ? "trusted" : "untrusted", !x.trusted),
              diffText(x.diff),
              {text: num(x.effect), value: x.effect, key: "effect"}];
    });
    main.appendChild(section("Claims (status derived here)", (claimRows.length ?
      [table(["claim", "when", "status", "author", "diff", "claimed effect"], claimRows, "claims")]
      : [empty("none yet")]).concat(omitted(data.untrusted_claims_omitted, "claim",
                                            "swarm findings --all"))));
    var hours = section("Runs per hour, per node", []);
    main.appendChild(hours);
    if (data.runs_per_hour.length) {
      chart(hours, {height: 160, data: {values: data.runs_per_hour.map(function (r) {
        return {hour: r.hour, node: r.author ? peer(r.author) : "others (not trusted here)",
                runs: r.runs}; })},
        mark: "bar", encoding: {x: {field: "hour", type: "temporal", timeUnit: "utcyearmonthdatehours",
                                   title: "hour (UTC)", axis: TIME},
                                y: {field: "runs", type: "quantitative", aggregate: "sum",
                                    title: "runs"},
                                color: {field: "node", type: "nominal"}}});
    } else { hours.appendChild(empty("no runs yet")); }
    var roles = section("Role mix over time", []);
    main.appendChild(roles);
    if (data.role_mix.length) {
      chart(roles, {height: 140, data: {values: data.role_mix}, mark: "bar",
        encoding: {x: {field: "hour", type: "temporal", timeUnit: "utcyearmonthdatehours",
                       title: "hour (UTC)", axis: TIME},
                   y: {field: "n", type: "quantitative", aggregate: "sum", title: "role choices"},
                   color: {field: "role", type: "nominal"}}});
    } else { roles.appendChild(empty("no role records yet")); }
    // a name another node's looks like carries its key's tail (`label`; swarm/output.py)
    main.appendChild(section("Peers", [table(["node", "name", "trust", "accelerator", "last record"],
      (data.peers || []).map(function (p) {
        return [peerTag(p.author), nameTag(p.label || p.name),
                marked(p.trust, p.trust !== "root" && p.trust !== "trusted"),
                p.accelerator, when(p.ts)]; }), "peers")]));
    if (data.node) {
      var keys = ["peer_id", "records", "peers", "uptime_s", "network"];
      main.appendChild(section("This node", [table(["field", "value"], keys.map(function (k) {
        return [k, String(data.node[k])]; }), "node")]));
    }
  }

  function leaderboard(data, main) {
    main.appendChild(el("h1", {}, ["Leaderboard", " ", trackPicker(data, "leaderboard")]));
    if (!data.rows.length) { main.appendChild(empty("no finished runs yet")); return; }
    var labels = {};
    data.rows.forEach(function (r) {
      labels[r.config_hash] = (r.trusted ? "#" + r.rank : "untrusted") + " " + diffText(r.diff);
    });
    main.appendChild(el("p", {}, ["Ranked by the mean of runs that count here (sane, by trusted " +
                                  "authors); configs with untrusted runs only follow, unranked."]));
    main.appendChild(table(["#", "config", "diff from base", "mean val_bpb", "± sd", "runs", "seeds",
                            "status"],
      data.rows.map(function (r) {
        return [r.trusted ? String(r.rank) : "", short(r.config_hash), diffText(r.diff),
                {text: num(r.mean), value: r.mean, key: "mean"},
                {text: num(r.std), value: r.std, key: "std"}, {text: String(r.n), value: r.n, key: "n"},
                String(r.seeds), !r.trusted ? marked("untrusted", true) : r.verified ? "verified" : ""];
      }), "leaderboard"));
    var s = section("Every seed against the baseline's noise band", [el("p", {}, [
      "One tick per seed. The grey band is the baseline's mean \u00b1 2 sd (its seed noise): " +
      "a config whose ticks sit in it is not told apart from the base. Red dashed ticks are " +
      "untrusted seeds (they do not count here); those beyond the counted seeds' range are " +
      "counted at the edge of their row."])]);
    main.appendChild(s);
    var layers = [];
    if (data.baseline) {
      var b = data.baseline;
      layers.push({data: {values: [{lo: b.mean - 2 * b.std, hi: b.mean + 2 * b.std}]},
                   mark: {type: "rect", opacity: 0.15, color: "#888"},
                   encoding: {x: {field: "lo", type: "quantitative"}, x2: {field: "hi"}}});
      layers.push({data: {values: [{mean: b.mean}]}, mark: {type: "rule", strokeDash: [4, 3]},
                   encoding: {x: {field: "mean", type: "quantitative"}}});
    }
    // The axis spans the seeds that count here and the band: an untrusted config far off (a
    // stranger's word) is clipped at the edge instead of squeezing every trusted seed together.
    var span = data.seeds.filter(function (x) { return x.counts && x.val_bpb !== null; })
      .map(function (x) { return x.val_bpb; })
      .concat(data.baseline ? [data.baseline.mean - 2 * data.baseline.std,
                               data.baseline.mean + 2 * data.baseline.std] : []);
    var scale = span.length ? {zero: false, domain: [Math.min.apply(null, span),
                                                     Math.max.apply(null, span)]} : {zero: false};
    layers.push({data: {values: data.seeds.map(function (x) {
                   return {config: labels[x.config_hash], val_bpb: x.val_bpb, seed: x.seed,
                           evidence: x.counts ? "counts here" : "untrusted"}; })},
                 mark: {type: "tick", thickness: 2, clip: true},
                 encoding: {x: {field: "val_bpb", type: "quantitative", scale: scale,
                                title: BPB},
                            y: {field: "config", type: "nominal", sort: null, title: null},
                            color: {field: "evidence", type: "nominal", title: "seed",
                                    scale: {domain: ["counts here", "untrusted"],
                                            range: ["#1f77b4", "#d62728"]}},
                            strokeDash: {field: "evidence", type: "nominal", legend: null,
                                         scale: {domain: ["counts here", "untrusted"],
                                                 range: [[1, 0], [2, 2]]}},
                            tooltip: [{field: "seed"}, {field: "val_bpb"}, {field: "evidence"}]}});
    if (scale.domain) layers = layers.concat(offScale(data.seeds, labels, scale.domain));
    chart(s, {height: Math.max(120, 22 * data.rows.length), layer: layers});
    omitted(data.untrusted_seeds_omitted, "seed", "swarm runs").forEach(function (n) {
      s.appendChild(n); });
  }

  // Seeds beyond the axis (untrusted ones only: the axis spans the counted ones) are said at the
  // edge of their config's row, with how many and how far, rather than vanishing.
  function offScale(seeds, labels, domain) {
    var rows = {};
    seeds.forEach(function (x) {
      if (x.val_bpb === null || (x.val_bpb >= domain[0] && x.val_bpb <= domain[1])) return;
      var low = x.val_bpb < domain[0], key = x.config_hash + (low ? "<" : ">");
      var r = rows[key] || (rows[key] = {config: labels[x.config_hash], low: low, n: 0,
                                         far: x.val_bpb});
      r.n += 1;
      r.far = low ? Math.min(r.far, x.val_bpb) : Math.max(r.far, x.val_bpb);
    });
    var values = Object.keys(rows).map(function (k) {
      var r = rows[k];
      return {config: r.config, at: r.low ? domain[0] : domain[1], low: r.low,
              text: (r.low ? "\u25c0 " : "") + r.n + " off scale (to " + num(r.far, 3) + ")" +
                    (r.low ? "" : " \u25b6")};
    });
    return [true, false].map(function (low) {
      return {data: {values: values.filter(function (v) { return v.low === low; })},
              mark: {type: "text", color: "#d62728", fontSize: 10, align: low ? "left" : "right"},
              encoding: {x: {field: "at", type: "quantitative"},
                         y: {field: "config", type: "nominal", sort: null},
                         text: {field: "text"}}};
    });
  }

  function knobs(data, main) {
    main.appendChild(el("h1", {}, ["Knob effects", " ", trackPicker(data, "knobs")]));
    if (!data.finding) { main.appendChild(empty("no finding yet (the meta-analyst publishes them)")); return; }
    var f = data.finding;         // its author's testimony: an untrusted author's is marked
    // its title as a heading, then who and when on a line of their own, then its text with its
    // lines: all in one paragraph, the title ran into the author and the text as prose
    main.appendChild(el("h2", {"class": "finding-title"}, ["Finding: " + f.title]));
    main.appendChild(el("p", {"class": "counts finding-about"}, [
      "finding " + f.id.slice(0, 8) + ", " + when(f.ts) + " UTC, by ", peerTag(f.author), " (",
      marked(f.author_status + " here", untrusted(f.author_status)), ")"]));
    main.appendChild(el("p", {"class": "finding-text"}, [f.text]));
    var rows = data.effects.map(function (e) {
      // a joint effect: settings the runs only changed together, one effect for all of them
      var what = e.settings ? Object.keys(e.settings).map(function (k) {
        return k + "=" + JSON.stringify(e.settings[k]); }).join(" & ") : e.knob + "=" + JSON.stringify(e.value);
      return {what: what, effect: e.effect, lo: e.lo, hi: e.hi, n: e.n};
    });
    var s = section("Effect on val_bpb \u00b1 2 standard errors (negative is better): the " +
                    "finding's estimates, its author's word, not derived here", []);
    main.appendChild(s);
    chart(s, {height: Math.max(100, 24 * rows.length), data: {values: rows}, layer: [
      {mark: "rule", encoding: {y: {field: "what", type: "nominal", sort: null, title: null},
                                x: {field: "lo", type: "quantitative", title: "effect on val_bpb (negative is better)"},
                                x2: {field: "hi"}}},
      {mark: {type: "point", filled: true, size: 60},
       encoding: {y: {field: "what", type: "nominal", sort: null}, x: {field: "effect", type: "quantitative"}}},
      {data: {values: [{zero: 0}]}, mark: {type: "rule", strokeDash: [3, 3]},
       encoding: {x: {field: "zero", type: "quantitative"}}}]});
    main.appendChild(table(["knob", "effect", "\u00b1 2 se", "runs"], rows.map(function (r) {
      return [r.what, {text: num(r.effect), value: r.effect, key: "effect"},
              r.lo === null ? "" : num((r.hi - r.lo) / 2), String(r.n)]; }), "knobs"));
    main.appendChild(section("Never tried", [data.never_tried.length ?
      el("p", {}, [data.never_tried.join(", ")]) : empty("every knob of the base config was tried")]));
  }

  function runs(data, main) {
    main.appendChild(el("h1", {}, ["Runs (newest " + data.runs.length + ")"]));
    var filter = el("input", {id: "filter", placeholder: "filter: track, status, purpose, author, diff"});
    main.appendChild(filter);
    var t = table(["run", "when", "track", "status", "purpose", "author", "trust", "diff", "seed",
                   "val_bpb"],
      data.runs.map(function (r) {
        return [link("runs/" + r.id, short(r.id)), when(r.ts), r.track.split(":")[0], r.status,
                r.purpose, peerTag(r.author), marked(r.author_status, untrusted(r.author_status)),
                diffText(r.diff), String(r.seed),
                {text: num(r.val_bpb), value: r.val_bpb, key: "val_bpb"}];
      }), "runs");
    main.appendChild(t);
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      Array.prototype.forEach.call(t.tBodies[0].rows, function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  }

  // A run's offline quality measures of its samples (docs/HARNESS.md), one row each beside
  // val_bpb; the names are the record's (a stranger's may be anything: text, as everywhere).
  function qualityRows(quality) {
    return Object.keys(quality || {}).sort().map(function (name) {
      var v = quality[name];
      return ["quality: " + name, {text: num(v, 3), value: v, key: "quality"}];
    });
  }

  function run(data, main) {
    var b = data.body, m = b.metrics || {};
    main.appendChild(el("h1", {}, ["Run " + short(data.id)]));
    main.appendChild(table(["field", "value"], [
      ["id", data.id], ["author", data.author], ["when (UTC)", when(data.ts)], ["track", b.track],
      ["status", b.status], ["purpose", b.purpose], ["seed", String(b.seed)],
      ["diff from base", diffText(data.diff)],
      ["val_bpb", {text: num(m.val_bpb), value: m.val_bpb, key: "val_bpb"}]].concat(
      qualityRows(b.quality), [
      ["evidence here", !data.here ? "" : data.here.counts ? "counts" :
                        marked("does not count: " + data.here.why_not, true)],
      ["train_loss", num(m.train_loss)], ["tokens", String(m.tokens)], ["wall_s", num(m.wall_s, 1)]]),
      "run"));
    var s = section("Loss curve", []);
    main.appendChild(s);
    // A stranger's curve may hold -1e308 and 1e308: their span overflows, and the axis read NaN.
    var losses = (data.curve || []).map(function (c) { return c.train_loss; });
    if (losses.length && !isFinite(Math.max.apply(null, losses) - Math.min.apply(null, losses))) {
      s.appendChild(empty("this run's loss curve holds values too far apart to draw"));
    } else if (data.curve && data.curve.length) {
      chart(s, {height: 220, data: {values: data.curve}, mark: {type: "line", point: true},
                encoding: {x: {field: "step", type: "quantitative", title: "training step"},
                           y: {field: "train_loss", type: "quantitative", scale: {zero: false},
                               title: "train loss"}}});
    } else { s.appendChild(empty("this run stored no loss curve (older harness)")); }
    if (data.samples && data.samples.length) {
      main.appendChild(section("Samples (the fixed prompt ▸ what the model wrote)",
        data.samples.map(function (x) {
          return el("pre", {"class": "sample"}, [x.prompt + "▸" + x.text]); })));
    }
    if (data.judgements && data.judgements.length) {
      // testimony: what each node's LLM judge said of the samples; a judge not trusted here is red
      main.appendChild(section("Judgements of the samples", [table(
        ["judge", "trust", "scores", "model", "rubric", "reason"],
        data.judgements.map(function (j) {
          var scores = Object.keys(j.scores || {}).sort().map(function (k) {
            return k + " " + j.scores[k]; }).join(", ");
          return [peerTag(j.author), marked(j.trusted ? "trusted" : "untrusted", !j.trusted),
                  scores, j.judge, j.rubric, j.reason];
        }), "judgements")]));
    }
  }

  function claim(data, main) {
    var c = data.claim;
    // The heading holds the diff cut (a stranger's may hold 128 knobs of 400 characters each);
    // the table below holds it whole.
    main.appendChild(el("h1", {}, ["Claim " + short(c.claim) + ": " + cut(diffText(c.diff), 120)]));
    // An untrusted author's claim is provisional: its status line is red, whatever it says.
    main.appendChild(el("p", {"class": "status-" + c.status + (c.trusted ? "" : " untrusted"),
                              id: "status"}, [c.status + ": " + data.why]));
    main.appendChild(table(["field", "value"], [
      ["summary", data.summary], ["diff", diffText(c.diff)],
      ["author", marked(el("span", {}, [peerTag(c.author), c.trusted ? "" : " (untrusted)"]), !c.trusted)],
      ["claimed effect", {text: num(c.effect), value: c.effect, key: "effect"}],
      ["effect measured here", {text: num(data.measured_effect), value: data.measured_effect,
                                key: "measured_effect"}],
      // a number like its neighbours (it alone sat on the left of the value column)
      ["effect in noise sds", {text: num(data.effect_in_sd, 2), value: data.effect_in_sd,
                               key: "effect_in_sd"}],
      ["p", {text: pval(c.p_value), value: c.p_value, key: "p_value"}],
      ["q", {text: pval(c.q_value), value: c.q_value, key: "q_value"}],
      ["runs counted", c.counted.length + " of " + c.candidate_runs.length + " cited"]], "claim"));
    var s = section("Evidence: candidate runs against the baseline runs (crosses do not count here)", []);
    main.appendChild(s);
    var points = data.evidence.filter(function (e) { return e.val_bpb !== null; }).map(function (e) {
      return {side: e.side, val_bpb: e.val_bpb, seed: e.seed,
              evidence: e.counts ? "counts here" : "does not count"}; });
    chart(s, {height: 110, data: {values: points}, mark: {type: "point", size: 50, filled: true},
              encoding: {x: {field: "val_bpb", type: "quantitative", scale: {zero: false}, title: BPB},
                         y: {field: "side", type: "nominal", title: null},
                         color: {field: "side", type: "nominal"},
                         shape: {field: "evidence", type: "nominal",
                                 scale: {domain: ["counts here", "does not count"],
                                         range: ["circle", "cross"]}},
                         tooltip: [{field: "seed"}, {field: "val_bpb"}, {field: "evidence"}]}});
    var excluded = data.evidence.filter(function (e) { return !e.counts; });
    main.appendChild(section("Runs that do not count here, and why", [excluded.length ?
      table(["run", "side", "author", "val_bpb", "why not"], excluded.map(function (e) {
        return [link("runs/" + e.id, short(e.id)), e.side, peerTag(e.author),
                num(e.val_bpb), e.why_not]; }), "excluded") : empty("every cited run counts")].concat(
      omitted(data.omitted.verify_runs, "fresh seed", "swarm runs"))));
    main.appendChild(section("Assessments (others' advice; the status above is derived here)",
      [table(["when", "by", "trust", "verdict", "test", "p", "q", "n", "reason"],
      data.assessments.map(function (a) {
        return [when(a.ts), peerTag(a.author), a.author_status, a.verdict, a.test, pval(a.p_value),
                pval(a.q_value), String(a.n), a.reason];
      }), "assessments")].concat(omitted(data.omitted.assessments, "assessment", "swarm sql"))));
    main.appendChild(section("Verifications (others' advice)",
      [table(["when", "outcome", "replay match", "by", "trust", "reason"],
      data.verifications.map(function (v) {
        return [when(v.ts), v.outcome, String(v.replay_match), peerTag(v.author), v.author_status,
                v.reason]; }),
      "verifications")].concat(omitted(data.omitted.verifications, "verification", "swarm sql"))));
  }

  function claimTable(rows, name) {
    return table(["claim", "when", "status", "effect", "p", "q", "diff", "why"], rows.map(function (x) {
      return [link("claims/" + x.claim, short(x.claim)), when(x.ts), x.status,
              {text: num(x.effect), value: x.effect, key: "effect"},
              {text: pval(x.p_value), value: x.p_value, key: "p_value"},
              {text: pval(x.q_value), value: x.q_value, key: "q_value"}, diffText(x.diff), x.reason];
    }), name);
  }

  function claims(data, main) {
    main.appendChild(el("h1", {}, ["Claims", " ", trackPicker(data, "claims")]));
    main.appendChild(section("Status derived here from trusted runs", [data.claims.length ?
      claimTable(data.claims, "claims") : empty("none yet")]));
    main.appendChild(section("By authors not trusted here (provisional)", [
      data.untrusted_claims.length ? claimTable(data.untrusted_claims, "untrusted_claims")
                                   : empty("none")].concat(omitted(data.untrusted_claims_omitted,
                                                                   "claim", "swarm findings --all"))));
  }

  function trust(data, main) {
    main.appendChild(el("h1", {}, ["Trust: who counts here and why"]));
    main.appendChild(el("p", {}, ["Roots: this node's own key", data.own ? " (" : " (none yet)",
      data.own ? peerTag(data.own) : "",
      (data.own ? ")" : "") + " and the pinned keys (swarm trust add). " +
      "Others earn trust when a trusted author replays one of their runs and it matches bit " +
      "for bit (the same CPU model and thread count)." + (data.total > data.authors.length ?
      " The first " + data.authors.length + " of " + data.total + " authors." : "")]));
    main.appendChild(table(["author", "status", "pinned", "level", "runs", "influence", "why"],
      data.authors.map(function (a) {
        return [peerTag(a.author), marked(a.status, untrusted(a.status)), a.pinned ? (a.pinned.note || a.pinned.source) : "",
                {text: num(a.level, 2), value: a.level, key: "level"},
                {text: String(a.runs), value: a.runs, key: "runs"},
                {text: (100 * a.influence).toFixed(1) + "%", value: a.influence, key: "influence"},
                a.why];
      }), "trust"));
    main.appendChild(el("p", {}, ["Influence: the author's share of the sane finished runs " +
      "this node holds (all tracks, whoever signed them): how much of what is here is theirs, " +
      "not whether it counts (the status says that)."]));
  }

  var VIEWS = {overview: overview, leaderboard: leaderboard, claims: claims, knobs: knobs,
               runs: runs, run: run, claim: claim, trust: trust};

  function jsonPath(view, params) {
    if (view === "run") return "json/runs/" + encodeURIComponent(params.id);
    if (view === "claim") return "json/claims/" + encodeURIComponent(params.id);
    var q = Object.keys(params).filter(function (k) { return params[k]; }).map(function (k) {
      return k + "=" + encodeURIComponent(params[k]); }).join("&");
    return "json/" + view + (q ? "?" + q : "");
  }

  function draw(view, data, main) {
    main.setAttribute("data-view", view);
    VIEWS[view](data, main);
    main.setAttribute("data-drawn", "yes");
  }

  function refresh() {
    var main = document.getElementById("main");
    return fetch(boot.root + jsonPath(boot.view, boot.params)).then(function (r) {
      // the server says what is missing ("no run with id ..."); a bare status code says nothing
      if (!r.ok) return r.json().catch(function () { return {}; }).then(function (body) {
        throw new Error(body.error || "HTTP " + r.status);
      });
      return r.json();
    }).then(function (data) {
      var fresh = el("main", {id: "main"});
      draw(boot.view, data, fresh);
      main.replaceWith(fresh);
    });
  }

  function live() {
    if (!window.EventSource) return;
    var source = new EventSource(boot.root + "events"), first = true, label = document.getElementById("live");
    // Close the stream when leaving the page: a page kept in the back/forward cache would hold
    // its connection, and browsers allow only 6 per host.
    window.addEventListener("pagehide", function () { source.close(); });
    source.addEventListener("records", function (e) {
      label.textContent = "live: " + count(JSON.parse(e.data).records, "record");
      if (!first) refresh();
      first = false;
    });
  }

  function startReport() {
    var main = document.getElementById("main");
    window.SWARM_REPORT.sections.forEach(function (s) {
      var part = el("div", {id: s.anchor, "class": "report-part"});
      main.appendChild(part);
      draw(s.view, s.data, part);
    });
    main.setAttribute("data-drawn", "yes");
  }

  function start() {
    boot = JSON.parse(document.getElementById("boot").textContent);
    boot.report = !!window.SWARM_REPORT;
    invisible = new RegExp("[" + boot.invisible + "]", "gu");
    if (boot.report) return startReport();
    refresh().then(live).catch(function (err) {
      document.getElementById("main").appendChild(empty("could not load: " + err.message));
    });
  }

  return {start: start};
})();
