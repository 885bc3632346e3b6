#!/usr/bin/env bash
# Decode speed with the TUI running vs headless `sparsetop run`, on the same chat prompt, greedy,
# N generated tokens (default 256). Runs alternate (headless, TUI, headless, ...) because the machine is noisy;
# prints each run's decode tok/s and the means. The TUI runs in a detached tmux pane (120x40) and
# its figure is read from its --record file (the `done` line's gen_tok_s, the same measure `run
# --json` prints).
#
#   [N=256] scripts/bench_tui.sh [RUNS] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
MODEL=${2:-$(cargo run -q --release -- pull)}
BIN=target/release/sparsetop
PROMPT="Write a long story about a dragon."
N=${N:-256}
cargo build -q --release
command -v tmux >/dev/null || apt-get install -y -q tmux
SOCK=sparsetop-bench-$$
TMP=$(mktemp -d)
trap 'tmux -L $SOCK kill-server 2>/dev/null || true; rm -rf "$TMP"' EXIT

headless() {
  "$BIN" run -m "$MODEL" --chat -p "$PROMPT" --temp 0 -s 42 -n "$N" --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % d["gen_tok_s"], len(d["generated_ids"]))'
}

tui() {
  local rec=$TMP/rec$1.jsonl
  tmux -L $SOCK new-session -d -s b -x 120 -y 40 \
    "$BIN chat -m '$MODEL' --temp 0 -s 42 -n $N --record '$rec'"
  until tmux -L $SOCK capture-pane -p -t b 2>/dev/null | grep -q 'ready │'; do sleep 0.2; done
  tmux -L $SOCK send-keys -t b -l "$PROMPT"
  tmux -L $SOCK send-keys -t b Enter
  until grep -q '"kind":"done"' "$rec" 2>/dev/null; do sleep 0.2; done
  # CPU time of the UI thread (the main thread) against the whole process: a measure of the UI's
  # cost that other load on the machine does not blur.
  local pid; pid=$(tmux -L $SOCK display -p -t b '#{pane_pid}')
  python3 - "$pid" >> "$TMP/ui_share" <<'PY'
import glob, sys
pid = sys.argv[1]; total = ui = 0
for f in glob.glob(f"/proc/{pid}/task/*/stat"):
    tid = f.split("/")[4]
    fields = open(f).read().rsplit(")", 1)[1].split()
    t = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    total += t
    if tid == pid:
        ui = t
print(f"{100 * ui / max(total, 1):.2f}")
PY
  tmux -L $SOCK send-keys -t b C-c
  tmux -L $SOCK send-keys -t b C-c
  while tmux -L $SOCK has-session -t b 2>/dev/null; do sleep 0.2; done
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    c = json.loads(l).get("chat")
    if c and c["kind"] == "done": print("%.2f" % c["gen_tok_s"], c["generated"])' "$rec"
}

h=(); t=()
for i in $(seq "$RUNS"); do
  read -r hv hn < <(headless); h+=("$hv")
  read -r tv tn < <(tui "$i"); t+=("$tv")
  echo "run $i: headless $hv tok/s ($hn tokens), TUI $tv tok/s ($tn tokens)"
done
python3 - "${h[*]}" "${t[*]}" "$(cat "$TMP/ui_share")" <<'PY'
import sys, statistics as st
h = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
u = [float(x) for x in sys.argv[3].split()]
mh, mt = st.mean(h), st.mean(t)
print(f"mean headless {mh:.2f} tok/s (sd {st.pstdev(h):.2f}), TUI {mt:.2f} tok/s (sd {st.pstdev(t):.2f}): TUI costs {100*(mh-mt)/mh:+.1f}%")
print(f"UI thread's share of the TUI process's CPU time: {', '.join(f'{x:.2f}%' for x in u)} (mean {st.mean(u):.2f}%)")
PY
