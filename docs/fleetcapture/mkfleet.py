# Renders docs/fleet.md from fleet.tmpl and the transcript the fleet test
# writes (deploy/ansible/sandbox_test.go):
#
#   HAGUARD_FLEET_TRANSCRIPT=/root/fleet HAGUARD_TIERS=system \
#       go test -count=1 -run TestFleetInSandboxes ./deploy/ansible/
#   python3 docs/fleetcapture/mkfleet.py /root/fleet docs/fleetcapture/fleet.tmpl > docs/fleet.md
#
# <<expr>> in the template is evaluated here; every output it quotes is
# cut from the transcript, never typed by hand.
import os, re, sys

DIR = sys.argv[1]
# The transcript's files (sandbox_test.go writes them).
R1, R2 = '1-rollout-v2.txt', '2-rollout-v3.txt'
B1, B2 = '3-rollback-run1.txt', '5-rollback-run2.txt'
RESULT = re.compile(r'^(ok|changed|fatal|failed|skipping|included): \[([^\]\s]+)')
HEADER = re.compile(r'^(TASK|PLAY) \[(.*)\] \*+$|^PLAY RECAP \*+$')


def read(f):
    return [l.rstrip() for l in open(os.path.join(DIR, f)).read().split('\n')]


def cmd(f):
    """The command line the test ran (the transcript's first line)."""
    return read(f)[0]


def run_id(f):
    return re.search(r'"msg": "run (\S+):', '\n'.join(read(f))).group(1)


def results(lines, start):
    """The result blocks after a header at start: [(host, [lines])]."""
    out, i = [], start + 1
    while i < len(lines) and not HEADER.match(lines[i]):
        m = RESULT.match(lines[i])
        if m:
            block = [lines[i]]
            i += 1
            while i < len(lines) and lines[i] and not RESULT.match(lines[i]) and not HEADER.match(lines[i]):
                block.append(lines[i])
                i += 1
            out.append((m.group(2), block))
            continue
        i += 1
    return out


def task(f, name, hosts=None, occurrence=None):
    """The TASK [... name] header(s) of f with the results of hosts (all
    when None), for every occurrence or only the n-th (0-based)."""
    lines, out, n = read(f), [], -1
    for i, l in enumerate(lines):
        m = HEADER.match(l)
        if not m or m.group(1) != 'TASK' or not (m.group(2) == name or m.group(2).endswith(' : ' + name)):
            continue
        n += 1
        if occurrence is not None and n != occurrence:
            continue
        rs = [b for h, b in results(lines, i) if hosts is None or h in hosts]
        if rs or hosts is None:
            out.append(l)
            for b in rs:
                out.extend(b)
    if not out:
        raise SystemExit('%s: no task %r for %s' % (f, name, hosts))
    return '\n'.join(out)


def play(f, name, occurrence=0, body=False):
    """The n-th PLAY [name] header of f; with body, the lines up to the
    next header too (e.g. "skipping: no hosts matched")."""
    lines, n = read(f), -1
    for i, l in enumerate(lines):
        m = HEADER.match(l)
        if m and m.group(1) == 'PLAY' and m.group(2) == name:
            n += 1
            if n == occurrence:
                out = [l]
                for b in lines[i + 1:]:
                    if not body or HEADER.match(b):
                        break
                    if b:
                        out.append(b)
                return '\n'.join(out)
    raise SystemExit('%s: no play %r' % (f, name))


def recap(f):
    lines = read(f)
    i = lines.index(next(l for l in lines if l.startswith('PLAY RECAP')))
    return '\n'.join([lines[i]] + [l for l in lines[i + 1:] if l])


def summary_line(f, host):
    """The summary's line for host, as the test printed it."""
    for l in read(f):
        if re.match(r'^\s+"' + re.escape(host) + r'\s', l):
            return l.strip().rstrip(',')
    raise SystemExit('%s: no summary line for %s' % (f, host))


def txn_times(f, pattern):
    """HH:MM:SS of the transaction ids that follow pattern in the summary."""
    text = '\n'.join(read(f))
    return sorted(m.group(1) + ':' + m.group(2) + ':' + m.group(3)
                  for m in re.finditer(pattern + r' \d{8}T(\d\d)(\d\d)(\d\d)\.\d+Z-\w+', text))


def whole(f):
    return '\n'.join(l for l in read(f) if l)


def console(*parts):
    return '```console\n' + '\n'.join(parts) + '\n```'


tmpl = open(sys.argv[2]).read()
print(re.sub(r'<<(.*?)>>', lambda mo: str(eval(mo.group(1))), tmpl, flags=re.S), end='')
