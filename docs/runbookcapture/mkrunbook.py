# Renders docs/runbook.md from the capture (capture_test.go) and runbook.tmpl:
# {{expr}} in the template is evaluated here (sec(title), filesec(name), ...).
import re,sys
raw=open(sys.argv[1]).read()
run=re.search(r'^RUN DIR (\S+)',raw,re.M).group(1)
raw=raw.replace(run,'$RUN')
listen_port=re.search(r"^LISTEN (\S+)",raw,re.M).group(1).split(":")[1]
cc_lines=[]
for s in ["1","2","3"]:
    cc_lines += re.search(r"^##### curl clustercheck db-node-"+s+r"\n(.*?)\n\n", raw, re.S|re.M).group(1).split("\n")
cc="\n".join(cc_lines)
def sec(title, strip_findings=False, keep_stderr=False, max_attempts=None):
    m=re.search(r'^##### '+re.escape(title)+r'\n(.*?)(?=^##### |^FILE |\Z)', raw, re.S|re.M)
    lines=m.group(1).rstrip('\n').split('\n')
    out=[]; skip=False
    for l in lines:
        if l=='[stderr]' and not keep_stderr:
            skip=True; continue
        if skip and l.startswith('[exit'):
            skip=False
        if skip: continue
        out.append(l)
    if strip_findings:
        out=[l for l in out if not re.match(r'^    \$RUN/\S+: (info|warning) ',l)]
    text='\n'.join(out)
    if max_attempts:
        # keep the first attempt object only
        text=re.sub(r'("attempts": \[\n\s*\{.*?\n\s*\}),\n.*?(\n\s*\],\n\s*"servers")', r'\1,\n        ... 19 more attempts ...\2', text, flags=re.S)
    return '```console\n'+text+'\n```\n'
def filesec(name):
    m=re.search(r'^FILE '+re.escape(name)+r':\n(.*?)(?=\n\n\n|^##### )', raw, re.S|re.M)
    return '```haproxy\n'+m.group(1).rstrip('\n').replace('\t','    ')+'\n```\n'
m=re.search(r'^CONFIG:\n(.*?)\n\n\n', raw, re.S|re.M)
initial='```haproxy\n'+m.group(1).rstrip('\n').replace('\t','    ')+'\n```\n'
tmpl=open(sys.argv[2]).read()
def repl(mo):
    return eval(mo.group(1))
print(re.sub(r'\{\{(.*?)\}\}', repl, tmpl, flags=re.S), end='')
