#!/usr/bin/env python3
"""Redis's own test suite against Kintsu, as a number.

Runs test files of a Redis 7.0.15 source tree's TCL suite in
external-server mode (tests/test_helper.tcl --host --port) against a
3-node Kintsu cluster (kintsu dev) and against redis-server, file by
file, and prints per file how many of the tests that pass against Redis
pass against Kintsu, with the failing tests grouped by their first error.

The suite runs with its own --cluster-mode (skipping the tests it tags
cluster:skip: several databases, single-node behaviour), --ignore-encoding
and --ignore-digest (memory encodings, DEBUG DIGEST), against Redis as
against Kintsu.

A Tcl exception (an error reply the test did not expect) ends a file's
run; the file is then run again with that test skipped, until it runs to
its end, so one missing command costs its own tests only.

    git clone https://github.com/redis/redis && git -C redis archive 7.0.15 tests | tar -x -C /tmp/redis-7.0.15
    scripts/redis-compat.py /tmp/redis-7.0.15 [unit/type/hash ...]

Needs tclsh (Debian's tcl) and redis-server 7.0 on PATH, and Go to build
Kintsu. Writes the logs and summary.md under --out.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FILES = [
    "unit/type/string", "unit/type/incr", "unit/type/hash", "unit/type/list",
    "unit/type/list-2", "unit/type/list-3", "unit/type/set", "unit/type/zset",
    "unit/expire", "unit/keyspace", "unit/multi", "unit/scan", "unit/scripting",
    "unit/pubsub", "unit/pubsubshard", "unit/bitops", "unit/hyperloglog",
    "unit/dump", "unit/info-command", "unit/introspection-2", "unit/protocol",
]

TEST_PORT = 21111
ANSI = re.compile(r"\x1b\[[0-9;]*m")
OK = re.compile(r"^\[ok\]: (.*) \(\d+ ms\)$")
ERR = re.compile(r"^\[err\]: (.*) in tests/")
SKIP = re.compile(r"^\[skip\]: (.*)$")
EXC = re.compile(r"^\[exception\]: (.*)$")
IGNORE = re.compile(r"^\[ignore\]: (.*): Tag: (\S+) denied$")

# Tests the suite itself tags as needing what an external server may
# lack; they are excluded from both runs and counted per reason.
DENY = {
    "needs:debug": "needs DEBUG (RELOAD, OBJECT, SLEEP, SET-ACTIVE-EXPIRE...), which Kintsu does not serve",
    "needs:pfdebug": "needs PFDEBUG, Redis's HyperLogLog encoding internals",
    "needs:repl": "reads Redis's replication stream (a single node's propagation to its replicas)",
}
IN_PROGRESS = re.compile(r"=> \(IN PROGRESS\) (.*)$")
TEST_AT = re.compile(r'^"test (?:\{(.*?)\}|"(.*?)") \{')


# Tests of what only a single, single-threaded Redis server does, or of
# its memory encodings, excluded by name from both runs (counted apart,
# each with its reason). Everything else counts.
BUSY = "a long script makes a single-threaded Redis answer BUSY to every other client; a Kintsu script blocks no one"
EXCLUDE = {
    "EXEC and script timeout": BUSY,
    "MULTI-EXEC body and script timeout": BUSY,
    "just EXEC and script timeout": BUSY,
    "MULTI and script timeout": BUSY,
    "Timedout read-only scripts can be killed by SCRIPT KILL": BUSY,
    "Timedout read-only scripts can be killed by SCRIPT KILL even when use pcall": BUSY,
    "Timedout script does not cause a false dead client": BUSY,
    "not enough good replicas": "min-replicas-to-write counts a Redis master's replicas; Kintsu acknowledges a write once a majority has it",
    "SETBIT/BITFIELD only increase dirty when the value changed":
        "reads rdb_changes_since_last_save, the count of changes since a Redis server's last RDB save; Kintsu has no RDB saves",
    "PUBLISH/SUBSCRIBE after UNSUBSCRIBE without arguments":
        "expects an UNSUBSCRIBE sent on one connection, whose reply is not awaited, to be applied before a PUBLISH on another: one thread's order",
    "PUBLISH/PSUBSCRIBE after PUNSUBSCRIBE without arguments":
        "expects a PUNSUBSCRIBE sent on one connection, whose reply is not awaited, to be applied before a PUBLISH on another: one thread's order",
    "Corrupted sparse HyperLogLogs are detected: Additional at tail":
        "a memory encoding: corrupts Redis's sparse HyperLogLog representation; Kintsu writes the dense one",
    "Corrupted dense HyperLogLogs are detected: Wrong length":
        "a memory encoding: expects a three-element HyperLogLog to be sparse",
    "Hash ziplist of various encodings":
        "a memory encoding: expects HGETALL in a listpack's insertion order",
    "Hash ziplist of various encodings - sanitize dump":
        "a memory encoding: expects HGETALL in a listpack's insertion order",
    "trim on SET with big value": "jemalloc's trimming of a query buffer kept as a value (MEMORY USAGE)",
    "RESTORE can set LRU": "eviction metadata (OBJECT IDLETIME under an LRU policy) of a Redis that evicts; Kintsu never evicts",
    "RESTORE can set LFU": "eviction metadata (OBJECT FREQ under an LFU policy) of a Redis that evicts; Kintsu never evicts",
    "PFADD / PFCOUNT cache invalidation works":
        "a memory encoding: reads the cached-count bytes of Redis's HyperLogLog header; Kintsu keeps no cached count",
    "TTL, TYPE and EXISTS do not alter the last access time of a key":
        "eviction metadata (OBJECT IDLETIME) of a Redis that evicts; Kintsu keeps no access times",
    "Keyspace notifications: evicted events": "eviction: Kintsu never evicts keys (maxmemory-policy is noeviction only)",
    "BRPOPLPUSH with multiple blocked clients":
        "expects two blocking commands sent on two connections, whose replies are not awaited, to block in the order sent: one thread's order",
}


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered PING on port {port}")


def resp_command(port, *args):
    """Sends one command and returns the raw reply (best effort)."""
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(msg)
            return s.recv(65536)
    except OSError:
        return b""


# What the suite may change on a node and a cut-short test may leave
# changed (a test that sets maxmemory to 1 and stops before it puts it
# back leaves every later write refused): put back before each run.
RESET = ["maxmemory", "maxmemory-clients", "maxclients", "timeout"]


def reset_nodes(ports, saved):
    for port in ports:
        resp_command(port, "SCRIPT", "KILL")
        for name, value in saved.get(port, {}).items():
            resp_command(port, "CONFIG", "SET", name, value)


def save_config(ports):
    saved = {}
    for port in ports:
        saved[port] = {}
        for name in RESET:
            reply = resp_command(port, "CONFIG", "GET", name).split(b"\r\n")
            if len(reply) >= 5:
                saved[port][name] = reply[4].decode()
    return saved


def run_file(src, port, name, out, test_timeout, file_timeout, before=lambda: None):
    """Runs one file until it ends; answers {test: (passed, first error line)}."""
    results, skips, deadline = {}, [], time.time() + file_timeout
    ignored = {}
    for attempt in range(1, 60):
        before()
        cmd = ["tclsh", "tests/test_helper.tcl", "--host", "127.0.0.1", "--port", str(port),
               "--single", name, "--clients", "1", "--timeout", str(test_timeout), "--baseport", str(TEST_PORT),
               # The suite's own switches for what a cluster cannot do
               # (tests tagged cluster:skip, SELECT) and for memory
               # encodings and DEBUG DIGEST, which Kintsu has none of.
               "--cluster-mode", "--ignore-encoding", "--ignore-digest",
               "--tags", " ".join("-" + t for t in DENY)]
        for s in list(EXCLUDE) + skips:
            cmd += ["--skiptest", s]
        log = os.path.join(out, f"{port}-{name.replace('/', '_')}-{attempt}.log")
        left = deadline - time.time()
        if left <= 0:
            break
        try:
            p = subprocess.run(cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=left, text=True, errors="replace")
            text = p.stdout
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            text += "\n[exception]: file timed out\n"
        with open(log, "w") as f:
            f.write(text)
        lines = [ANSI.sub("", l) for l in text.splitlines()]
        exc_test = None
        for i, l in enumerate(lines):
            if m := IGNORE.match(l):
                ignored.setdefault(m.group(1), m.group(2))
            elif m := OK.match(l):
                results.setdefault(m.group(1), (True, ""))
            elif m := ERR.match(l):
                why = lines[i + 1].strip() if i + 1 < len(lines) else ""
                results.setdefault(m.group(1), (False, why))
            elif m := EXC.match(l):
                why = m.group(1)
                for l2 in lines[i + 1:]:
                    if t := TEST_AT.match(l2.strip()):
                        exc_test = t.group(1) if t.group(1) is not None else t.group(2)
                        break
                if exc_test is not None:
                    results.setdefault(exc_test, (False, "exception: " + why))
                break
            elif m := IN_PROGRESS.search(l):
                # The test ran past --test-timeout: the suite stops there.
                exc_test = m.group(1)
                results.setdefault(exc_test, (False, "timed out"))
                break
        if exc_test is None or exc_test in skips:
            break
        skips.append(exc_test)
    return results, ignored


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="a Redis 7.0.15 source tree (its tests/ directory is used)")
    ap.add_argument("files", nargs="*", default=FILES)
    ap.add_argument("--out", default="")
    ap.add_argument("--base-port", type=int, default=7600)
    ap.add_argument("--test-timeout", type=int, default=300)
    ap.add_argument("--file-timeout", type=int, default=1800)
    ap.add_argument("--kintsu", default="", help="a built kintsu binary (default: go build)")
    ap.add_argument("--against", type=int, default=0,
                    help="only run the files against a server already listening on this port, and list what failed")
    ap.add_argument("--test-port", type=int, default=21111, help="the suite's own test server's first port")
    args = ap.parse_args()
    src = os.path.abspath(args.src)
    if not os.path.exists(os.path.join(src, "tests", "test_helper.tcl")):
        raise SystemExit(f"{src} has no tests/test_helper.tcl")
    for tool in ("tclsh", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install tcl redis-server)")
    out = args.out or tempfile.mkdtemp(prefix="kintsu-compat-")
    os.makedirs(out, exist_ok=True)
    global TEST_PORT
    TEST_PORT = args.test_port
    if args.against:
        for name in args.files:
            got, ignored = run_file(src, args.against, name, out, args.test_timeout, args.file_timeout)
            bad = {t: why for t, (ok, why) in got.items() if not ok}
            print(f"{name}: {len(got) - len(bad)} passed, {len(bad)} failed, {len(ignored)} excluded")
            for t, why in bad.items():
                print(f"  {t}: {why[:160]}")
        return
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kintsu = args.kintsu
    if not kintsu:
        kintsu = os.path.join(out, "kintsu")
        subprocess.run(["go", "build", "-o", kintsu, "./cmd/kintsu"], cwd=repo, check=True)
    kport, rport = args.base_port + 1, args.base_port + 100
    procs = []
    try:
        procs.append(subprocess.Popen([kintsu, "dev", "--dir", os.path.join(out, "cluster"),
                                       "--base-port", str(args.base_port)],
                                      stdout=open(os.path.join(out, "kintsu.log"), "w"), stderr=subprocess.STDOUT))
        wait_port(kport)
        kports = [args.base_port + i for i in (1, 2, 3)]
        for p in kports:
            wait_port(p)
        saved = save_config(kports)
        rows, failing, excluded = [], {}, {}

        def write_summary():
            total_p, total_w = sum(r[1] for r in rows), sum(r[2] for r in rows)
            with open(os.path.join(out, "summary.md"), "w") as f:
                f.write("| file | pass against Kintsu | of those passing against Redis | excluded |\n|---|---|---|---|\n")
                for name, p, w, x in rows:
                    f.write(f"| {name} | {p} | {w} | {x} |\n")
                f.write(f"| **all** | **{total_p}** | **{total_w}** ({100 * total_p / max(total_w, 1):.1f}%) "
                        f"| {sum(r[3] for r in rows)} |\n\n")
                f.write("Excluded by the suite's own tags:\n\n")
                for tag, tests in sorted(excluded.items()):
                    f.write(f"- {len(tests)} × `{tag}` ({DENY.get(tag, '')}): " + "; ".join(tests[:4]) + (" ..." if len(tests) > 4 else "") + "\n")
                f.write("\n")
                f.write("Excluded by name (single-node behaviour, memory encodings):\n\n")
                for t, why in EXCLUDE.items():
                    f.write(f"- `{t}`: {why}\n")
                f.write("\n")
                f.write("Failing tests by their first error:\n\n")
                for why, tests in sorted(failing.items(), key=lambda kv: -len(kv[1])):
                    f.write(f"- {len(tests)} × `{why}`: " + "; ".join(tests[:6]) + (" ..." if len(tests) > 6 else "") + "\n")

        for name in args.files:
            t0 = time.time()
            # A fresh redis-server per file: a file cut short can leave
            # one paused or busy.
            redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                                      "--enable-debug-command", "yes", "--dir", out],
                                     stdout=open(os.path.join(out, "redis.log"), "a"), stderr=subprocess.STDOUT)
            try:
                wait_port(rport)
                ref, _ = run_file(src, rport, name, out, args.test_timeout, args.file_timeout)
            finally:
                redis.kill()
                redis.wait()
            got, ignored = run_file(src, kport, name, out, args.test_timeout, args.file_timeout,
                           before=lambda: reset_nodes(kports, saved))
            want = [t for t, (ok, _) in ref.items() if ok]
            passed = [t for t in want if got.get(t, (False, ""))[0]]
            for t in want:
                if not got.get(t, (False, ""))[0]:
                    why = got.get(t, (False, "not reached"))[1] or "failed"
                    failing.setdefault(why[:110], []).append(f"{name}: {t}")
            for t, tag in ignored.items():
                excluded.setdefault(tag, []).append(f"{name}: {t}")
            rows.append((name, len(passed), len(want), len(ignored)))
            print(f"{name}: {len(passed)}/{len(want)}, {len(ignored)} excluded ({time.time() - t0:.0f} s)", flush=True)
            write_summary()
        print(open(os.path.join(out, "summary.md")).read())
        print(f"logs in {out}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
