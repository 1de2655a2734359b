//! One self-contained HTML page: the verdict, a stacked bar per thread, a zoomable timeline,
//! the hot functions per state and the flame graph. No network: a Content-Security-Policy
//! forbids loading anything, and every string from the target is escaped.

use std::fmt::Write as _;

use base64::Engine as _;
use std::io::{self, Write};

use super::colors::style;
use super::stacks::{frame_label, thread_label};
use super::words::{self, pct};
use crate::analysis::{Analysis, ThreadSummary};
use crate::diagnosis::Verdict;
use crate::model::{PerState, Pid, ThreadState, Tid};
use crate::report::{HotFunction, LineGil, Report, States, Thread};

/// Timeline columns: the page's size is bounded by this, not by the run's length.
const TIMELINE_COLUMNS: usize = 1000;
/// Threads drawn on the timeline (the busiest); the bars show them all.
const TIMELINE_THREADS: usize = 64;
const ROW: usize = 16;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666} .verdict{background:#f7f7f9;border-left:4px solid #d62728;padding:10px 14px}
.headline{font-weight:600;font-size:16px} pre{background:#f3f3f3;padding:8px;overflow:auto}
.thread{display:flex;align-items:center;gap:8px;margin:2px 0}
details.group summary{list-style:none;cursor:pointer}
details.group summary::-webkit-details-marker{display:none}
details.group summary .name::before{content:"▸ "}
details.group[open] summary .name::before{content:"▾ "}
details.group>.thread{margin-left:16px}
.thread .name{width:200px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-family:monospace}
.bar{display:flex;flex:1;height:16px;background:#eee} .seg{height:100%}
.legend span{display:inline-block;margin-right:12px} .sw{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse} td,th{padding:2px 10px;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.tl{display:flex;border:1px solid #ddd} .tl .labels{width:190px;flex:none;font:11px monospace;padding-top:1px}
.tl .labels div{height:16px;line-height:16px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding:0 6px;text-align:right}
.tl .chart{flex:1;min-width:0} #timeline{width:100%;display:block;cursor:grab;user-select:none}
body.only-timeline>*:not(#timeline-section):not(script){display:none}
.axis{position:relative;height:16px;font-size:11px;color:#666} .axis span{position:absolute;transform:translateX(-50%)}
iframe{width:100%;height:620px;border:1px solid #ddd}
"#;

/// Counts errors before anything else runs, and marks the page rendered at the end.
const SCRIPT_HEAD: &str = r#"window.gilscopeErrors=0;window.addEventListener('error',function(){window.gilscopeErrors++;if(document.body)document.body.dataset.errors=window.gilscopeErrors;});"#;

const SCRIPT_TAIL: &str = r#"
(function(){
  if(location.hash==='#timeline-only')document.body.classList.add('only-timeline');
  var svg=document.getElementById('timeline');
  if(svg){
    var full=svg.viewBox.baseVal, x0=full.x, w0=full.width, span=+svg.dataset.span;
    var view={x:x0,w:w0}, axis=document.getElementById('axis');
    function apply(){svg.setAttribute('viewBox',view.x+' '+full.y+' '+view.w+' '+full.height);
      var html='';for(var i=1;i<10;i++){var t=(view.x-x0+view.w*i/10)/w0*span;
        html+='<span style="left:'+(i*10)+'%">'+t.toFixed(span<2?2:1)+' s</span>';}
      axis.innerHTML=html;}
    apply();
    svg.addEventListener('wheel',function(e){e.preventDefault();
      var r=svg.getBoundingClientRect(), f=(e.clientX-r.left)/r.width, at=view.x+f*view.w;
      var k=e.deltaY<0?0.8:1.25; view.w=Math.min(w0,Math.max(w0/500,view.w*k));
      view.x=Math.min(x0+w0-view.w,Math.max(x0,at-f*view.w)); apply();},{passive:false});
    var drag=null;
    svg.addEventListener('mousedown',function(e){drag={x:e.clientX,vx:view.x};});
    window.addEventListener('mouseup',function(){drag=null;});
    window.addEventListener('mousemove',function(e){if(!drag)return;
      var r=svg.getBoundingClientRect(), dx=(e.clientX-drag.x)/r.width*view.w;
      view.x=Math.min(x0+w0-view.w,Math.max(x0,drag.vx-dx)); apply();});
    svg.addEventListener('dblclick',function(){view={x:x0,w:w0};apply();});
  }
  document.body.dataset.errors=window.gilscopeErrors;
  document.body.dataset.rendered='ok';
})();
"#;

pub fn render(
    report: &Report,
    analysis: &Analysis,
    flamegraph_svg: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut h = String::new();
    head(&mut h, report);
    if let Some(v) = &report.verdict {
        verdict(&mut h, v);
    }
    threads(&mut h, report);
    h.push_str("<section id=\"timeline-section\"><h2>Timeline</h2><p class=\"meta\">Wheel to zoom, drag to pan, double-click to reset. The top row is the GIL, coloured while held. Open with <code>#timeline-only</code> to see just this.</p>\n");
    timeline(&mut h, analysis);
    h.push_str("</section>\n");

    h.push_str("<h2>Hot functions</h2>");
    for (title, hot) in [
        ("Holding the GIL", &report.hot.gil),
        ("Waiting for the GIL", &report.hot.gil_wait),
        ("Native code without the GIL", &report.hot.native),
        ("In I/O", &report.hot.io),
        ("Waiting on a lock", &report.hot.lock),
        ("Waiting for an object's lock", &report.hot.object_lock),
    ] {
        hot_table(&mut h, title, hot);
    }
    gil_lines_table(&mut h, &report.gil_by_line);

    // The flame graph is its own SVG document (its script expects to be the root), so it goes
    // in a frame, as a data: URL the page's policy allows and nothing else.
    let _ = writeln!(
        h,
        "<h2>Flame graph</h2><p class=\"meta\">Click a frame to zoom, Ctrl-F to search.</p>\
         <iframe title=\"flame graph\" sandbox=\"allow-scripts\" src=\"data:image/svg+xml;base64,{}\"></iframe>",
        base64::engine::general_purpose::STANDARD.encode(flamegraph_svg)
    );
    let _ = write!(h, "<script>{SCRIPT_TAIL}</script>\n</body></html>\n");
    out.write_all(h.as_bytes())
}

/// The page's head, the run's line and its notes.
fn head(h: &mut String, report: &Report) {
    let t = &report.target;
    let title = format!("gilscope: {}", t.command);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; frame-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{CSS}</style><script>{SCRIPT_HEAD}</script></head>\n<body data-errors=\"0\">\n",
        escape(&title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1><div class=\"meta\">{} · PID {} · {:.1} s · {} samples at {} Hz · {} used",
        escape(&t.command),
        escape(&words::interpreter(t.python.as_deref())),
        t.pid,
        report.duration_s,
        report.samples,
        report.rate_hz,
        words::of_cores(report.process.cpu_cores_used, report.process.cores, 2)
    );
    if let Some(held) = report.process.gil_held {
        let _ = write!(h, " · GIL held {}", pct(held));
    }
    if let Some(rate) = report.process.gil_switches_per_s {
        let _ = write!(h, " · {rate:.0} GIL hand-offs/s");
    }
    if let Some(short) = words::short_of_cpus(&report.process) {
        let _ = write!(h, " · {short}");
    }
    if let Some(ending) = &report.ending {
        let _ = write!(h, " · {}", escape(ending));
    }
    h.push_str("</div>\n");
    for note in &t.notes {
        let _ = write!(h, "<p class=\"meta\">Note: {}</p>", escape(note));
    }
    if let Some(push) = &report.push {
        let _ = write!(
            h,
            "<p class=\"meta\">Pyroscope: {}</p>",
            escape(&super::words::push_summary(push))
        );
    }
}

/// The verdict: headline, evidence, what to do, the snippet, the prediction and the phases.
fn verdict(h: &mut String, v: &Verdict) {
    let _ = write!(
        h,
        "<section class=\"verdict\" id=\"verdict\" data-kind=\"{}\"><div class=\"headline\">{}</div><ul>",
        v.kind.name(),
        escape(&v.headline)
    );
    for e in &v.evidence {
        let _ = write!(h, "<li>{}</li>", escape(e));
    }
    h.push_str("</ul>");
    if !v.advice.is_empty() {
        h.push_str("<b>What to do</b><ul>");
        for a in &v.advice {
            let _ = write!(h, "<li>{}</li>", escape(a.trim_start_matches("- ")));
        }
        h.push_str("</ul>");
    }
    if let Some(snippet) = &v.snippet {
        let _ = write!(h, "<pre>{}</pre>", escape(snippet));
    }
    if let Some(p) = &v.predicted_speedup {
        let parts: Vec<String> = [
            ("processes", p.processes),
            ("more threads", p.threads),
            ("free-threaded", p.free_threaded),
            ("the fix above", p.fix),
        ]
        .iter()
        .filter_map(|(label, x)| x.map(|x| format!("{label} {x:.1}x")))
        .collect();
        let _ = write!(
            h,
            "<p><b>Predicted speedup:</b> {}</p><ul class=\"meta\">",
            parts.join(" · ")
        );
        for a in &p.assumptions {
            let _ = write!(h, "<li>assuming {}</li>", escape(a));
        }
        h.push_str("</ul>");
    }
    for phase in &v.phases {
        let _ = write!(
            h,
            "<p>Phase {:.1}–{:.1} s: {} ({})</p>",
            phase.start_s,
            phase.end_s,
            escape(&phase.headline),
            phase.kind.name()
        );
    }
    h.push_str("</section>\n");
}

/// One bar per group of threads, its states' shares as coloured segments; a group of several
/// threads opens onto one bar per thread.
fn threads(h: &mut String, report: &Report) {
    h.push_str("<h2>Threads</h2><div class=\"legend\">");
    for state in ThreadState::ALL {
        let s = style(state);
        let _ = write!(
            h,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>",
            s.hex, s.label
        );
    }
    h.push_str("</div>\n<div id=\"threads\">");
    let thread = |pid: Pid, tid: Tid| report.threads.iter().find(|t| t.pid == pid && t.tid == tid);
    if report.groups.is_empty() {
        for th in &report.threads {
            thread_bar(h, th);
        }
    }
    for g in &report.groups {
        let members: Vec<&Thread> = g
            .tids
            .iter()
            .filter_map(|&tid| thread(g.pid, tid))
            .collect();
        if let [only] = members.as_slice() {
            thread_bar(h, only);
            continue;
        }
        let label = words::group_label(g);
        h.push_str("<details class=\"group\"><summary>");
        bar(h, &label, &g.states, g.cpu_s, None);
        h.push_str("</summary>");
        for th in members {
            thread_bar(h, th);
        }
        h.push_str("</details>");
    }
    h.push_str("</div>\n");
}

fn thread_bar(h: &mut String, th: &Thread) {
    bar(
        h,
        &thread_label(th.name.as_deref(), th.tid),
        &th.states,
        th.cpu_s,
        Some(th.tid),
    );
}

/// A named bar of state shares, with its CPU seconds.
fn bar(h: &mut String, label: &str, states: &States, cpu_s: f64, tid: Option<Tid>) {
    let _ = write!(
        h,
        "<div class=\"thread\"><span class=\"name\" title=\"{0}\">{0}</span><div class=\"bar\"{1}>",
        escape(label),
        tid.map(|t| format!(" data-tid=\"{t}\""))
            .unwrap_or_default()
    );
    for state in ThreadState::ALL {
        let f = states.get(state);
        if f > 0.0 {
            let s = style(state);
            let _ = write!(
                h,
                "<span class=\"seg\" style=\"width:{:.3}%;background:{}\" title=\"{} {}\"></span>",
                f * 100.0,
                s.hex,
                s.label,
                pct(f)
            );
        }
    }
    let _ = write!(
        h,
        "</div><span class=\"meta\">{cpu_s:.2} CPU s</span></div>"
    );
}

fn hot_table(h: &mut String, title: &str, hot: &[HotFunction]) {
    if hot.is_empty() {
        return;
    }
    let holders = hot.iter().any(|f| f.held_by.is_some());
    let _ = write!(
        h,
        "<h3>{title}</h3><table><tr><th>function</th><th>file:line</th><th>share</th>{}</tr>",
        if holders {
            "<th>the GIL held by</th>"
        } else {
            ""
        }
    );
    for f in hot.iter().filter(|f| f.fraction >= 0.005) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}:{}</td><td class=\"n\">{}</td>",
            escape(&f.function),
            escape(&f.file),
            f.line,
            pct(f.fraction)
        );
        if holders {
            let held_by: Vec<String> = f
                .held_by
                .iter()
                .flatten()
                .map(|g| {
                    format!(
                        "{} {} in {}",
                        escape(&words::thread_label(g.thread.as_deref(), g.tid)),
                        pct(g.fraction),
                        escape(&words::holder_place(g))
                    )
                })
                .collect();
            let _ = write!(h, "<td>{}</td>", held_by.join("<br>"));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// The busiest lines and whether threads help there.
fn gil_lines_table(h: &mut String, lines: &[LineGil]) {
    if lines.is_empty() {
        return;
    }
    h.push_str("<h2>Line by line: where the GIL is released</h2><table><tr><th>line</th><th>file:line</th><th>thread-s</th><th>released</th><th>held</th><th>waited</th><th>for threads</th></tr>");
    for l in lines {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}:{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(l.source.as_deref().unwrap_or(&l.function)),
            escape(&l.file),
            l.line,
            l.seconds,
            pct(l.released),
            pct(l.held),
            pct(l.waiting),
            escape(&words::gil_use(l))
        );
    }
    h.push_str("</table>");
}

/// The timeline as inline SVG, binned into columns: each column of a row takes the state that
/// covered most of it, and runs of equal columns become one rectangle.
/// One column of a timeline row: the state that filled most of it, with its tooltip.
type Column = Option<(ThreadState, String)>;

fn timeline(h: &mut String, analysis: &Analysis) {
    let Some((start, end)) = timeline_span(analysis) else {
        h.push_str("<p>No samples.</p>");
        return;
    };
    let span = (end - start).max(1) as f64;
    let threads = timeline_threads(analysis);
    let height = (threads.len() + 1) * ROW;
    let col_ns = span / TIMELINE_COLUMNS as f64;
    h.push_str("<div class=\"tl\"><div class=\"labels\"><div>GIL</div>");
    for thread in &threads {
        let label = escape(&thread_label(thread.name.as_deref(), thread.tid));
        let _ = write!(h, "<div title=\"{label}\">{label}</div>");
    }
    let _ = write!(
        h,
        "</div><div class=\"chart\"><svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {TIMELINE_COLUMNS} {height}\" \
         data-span=\"{}\" preserveAspectRatio=\"none\" height=\"{height}\">",
        span / 1e9
    );
    let gil = gil_columns(analysis, start, col_ns);
    timeline_row(h, (0, "GIL"), &gil, col_ns);
    for (k, thread) in threads.iter().enumerate() {
        let columns = thread_columns(analysis, thread, start, col_ns);
        let label = thread_label(thread.name.as_deref(), thread.tid);
        timeline_row(h, ((k + 1) * ROW, &label), &columns, col_ns);
    }
    h.push_str("</svg><div class=\"axis\" id=\"axis\"></div></div></div>\n");
    if analysis.timeline_truncated {
        h.push_str("<p class=\"meta\">The timeline was cut short: the run had more state changes than gilscope keeps.</p>");
    }
}

/// The first and last moment any thread's timeline covers.
fn timeline_span(analysis: &Analysis) -> Option<(u64, u64)> {
    let timelines = || analysis.threads.iter().map(|t| &t.timeline);
    let start = timelines()
        .filter_map(|t| t.first())
        .map(|s| s.start_ns)
        .min()?;
    let end = timelines()
        .filter_map(|t| t.last())
        .map(|s| s.end_ns)
        .max()?;
    Some((start, end))
}

/// The busiest threads (at most [`TIMELINE_THREADS`]), in the order they started.
fn timeline_threads(analysis: &Analysis) -> Vec<&ThreadSummary> {
    let mut threads: Vec<_> = analysis
        .threads
        .iter()
        .filter(|t| !t.timeline.is_empty())
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.samples - t.counts[ThreadState::Idle]));
    threads.truncate(TIMELINE_THREADS);
    threads.sort_by_key(|t| (t.first_t_ns, t.tid));
    threads
}

/// One row of rectangles at height `y`, a rectangle per run of columns in one state.
fn timeline_row(h: &mut String, (y, label): (usize, &str), columns: &[Column], col_ns: f64) {
    let mut i = 0;
    while i < columns.len() {
        let Some((state, tip)) = &columns[i] else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < columns.len() && columns[j].as_ref().is_some_and(|c| c.0 == *state) {
            j += 1;
        }
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} {:.2}–{:.2} s: {}</title></rect>",
            i,
            y + 1,
            j - i,
            ROW - 2,
            style(*state).hex,
            escape(label),
            i as f64 * col_ns / 1e9,
            j as f64 * col_ns / 1e9,
            escape(tip)
        );
        i = j;
    }
}

/// The GIL row: coloured where the root process's GIL was held most of the column (each
/// process of a tree has its own; the trace shows them all).
fn gil_columns(analysis: &Analysis, start: u64, col_ns: f64) -> Vec<Column> {
    let mut held = vec![0f64; TIMELINE_COLUMNS];
    let root_gil = analysis
        .root()
        .map_or(&[][..], |p| p.gil_timeline.as_slice());
    for seg in root_gil.iter().filter(|s| s.locked) {
        spread(&mut held, seg.start_ns, seg.end_ns, start, col_ns);
    }
    held.iter()
        .map(|&held| (held > col_ns / 2.0).then(|| (ThreadState::Gil, "held".to_string())))
        .collect()
}

/// A thread's row: each column in the state it spent most of the column in, with the first
/// frame seen in that state there as its tooltip.
fn thread_columns(
    analysis: &Analysis,
    thread: &ThreadSummary,
    start: u64,
    col_ns: f64,
) -> Vec<Column> {
    let mut time = vec![PerState::<f64>::default(); TIMELINE_COLUMNS];
    let mut tips = vec![PerState::<Option<String>>::default(); TIMELINE_COLUMNS];
    for seg in &thread.timeline {
        let mut per_col = vec![0f64; TIMELINE_COLUMNS];
        let (first, last) = spread(&mut per_col, seg.start_ns, seg.end_ns, start, col_ns);
        for c in first..=last {
            time[c][seg.state] += per_col[c];
            tips[c][seg.state].get_or_insert_with(|| {
                let label = style(seg.state).label;
                match seg.stack.and_then(|s| analysis.top_frame(s)) {
                    Some(f) => format!("{label} in {}", frame_label(f)),
                    None => label.to_string(),
                }
            });
        }
    }
    time.iter()
        .zip(tips)
        .map(|(t, tips)| {
            let (best, &most) = t.iter().max_by(|a, b| a.1.total_cmp(b.1))?;
            (most > 0.0).then(|| (best, tips[best].clone().unwrap_or_default()))
        })
        .collect()
}

/// Adds the time of `[from, to)` to the columns it covers; returns the first and last column.
fn spread(cols: &mut [f64], from: u64, to: u64, origin: u64, col_ns: f64) -> (usize, usize) {
    let last_col = cols.len() - 1;
    let a = (from.saturating_sub(origin)) as f64;
    let b = (to.saturating_sub(origin)) as f64;
    let first = ((a / col_ns) as usize).min(last_col);
    let last = (((b / col_ns).ceil() as usize).saturating_sub(1)).clamp(first, last_col);
    for (c, slot) in cols.iter_mut().enumerate().take(last + 1).skip(first) {
        let lo = (c as f64 * col_ns).max(a);
        let hi = ((c + 1) as f64 * col_ns).min(b);
        *slot += (hi - lo).max(if a == b { col_ns * 0.01 } else { 0.0 });
    }
    (first, last)
}
