// The page's status line and in-view messages. Each view has its own status (switching views
// shows that view's, not the last one written) and a busy state: a spinner and what is being
// computed, until the answer comes. What a view needs, or why it failed, goes into the view
// (its .msg element), where a long message can wrap without moving the page's header.

export type View = 'draw' | 'edit' | 'sample' | 'reconstruct' | 'latent' | 'codebook' | 'runs' | 'train';

interface State {
  text: string;
  busy: number;
  busyText: string;
}

const states = new Map<View, State>();
let current: View = 'draw';
const state = (v: View): State => {
  let s = states.get(v);
  if (!s) states.set(v, (s = { text: '', busy: 0, busyText: '' }));
  return s;
};

function render(): void {
  const s = state(current);
  const bar = document.getElementById('status-bar')!;
  const text = document.getElementById('status')!;
  const t = s.busy ? s.busyText : s.text;
  bar.classList.toggle('busy', s.busy > 0);
  bar.setAttribute('aria-busy', String(s.busy > 0));
  text.textContent = t;
  text.title = t;
  const busy = [...states].filter(([, x]) => x.busy > 0).map(([v]) => v);
  if (busy.length) document.body.dataset.busy = busy.join(' ');
  else delete document.body.dataset.busy;
}

export function initStatus(): void {
  document.addEventListener('view', (e) => {
    current = (e as CustomEvent<View>).detail;
    render();
  });
  render();
}

export interface Status {
  /** The view's status text (shown when it is the current view). */
  say(msg: string): void;
  /** Busy with `msg` (spinner) until the returned function is called, with the final text. */
  busy(msg: string): (final?: string) => void;
  /** Progress while busy (e.g. a download's MB so far). */
  busyText(msg: string): void;
}

/** The status of `view`; 'current' means whichever view is shown at each call. */
export function statusFor(view: View | 'current'): Status {
  const v = () => (view === 'current' ? current : view);
  return {
    say(msg) {
      state(v()).text = msg;
      render();
    },
    busy(msg) {
      const s = state(v());
      s.busy++;
      s.busyText = msg;
      render();
      let ended = false;
      return (final?: string) => {
        if (ended) return;
        ended = true;
        s.busy = Math.max(0, s.busy - 1);
        if (final !== undefined) s.text = final;
        render();
      };
    },
    busyText(msg) {
      const s = state(v());
      if (s.busy) s.busyText = msg;
      else s.text = msg;
      render();
    },
  };
}

const escape = (t: string) => t.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * Show `msg` in the view (null: clear it): 'need' for what this server lacks, 'error' for a
 * failure. `code` in backticks is shown as code (commands to run).
 */
export function note(view: View, msg: string | null, kind: 'need' | 'error' = 'error'): void {
  const el = document.getElementById(`msg-${view}`);
  if (!el) return;
  if (msg === null) {
    if (el.dataset.kind !== 'need') {
      el.hidden = true;
      el.textContent = '';
      delete el.dataset.kind;
    }
    return;
  }
  el.hidden = false;
  el.dataset.kind = kind;
  el.classList.toggle('error', kind === 'error');
  el.innerHTML = escape(msg).replace(/`([^`]+)`/g, '<code>$1</code>');
}
