#!/usr/bin/env bash
# The shipped balancer configurations agree with each other and with the Kubernetes peers:
#  - HAProxy accepts deploy/haproxy.cfg as shipped (`haproxy -c`; unresolvable names only
#    disable their servers);
#  - the upstream servers of deploy/nginx.conf and deploy/haproxy.cfg are the names of
#    deploy/kubernetes/peers.yaml, in the same order (nginx's ring and the replicas' must be
#    built from the same names);
#  - the `map` that deploy/README.md gives for ingress-nginx's http-snippet is the `map` of
#    deploy/nginx.conf (the key must be the same everywhere).
# The real nginx and HAProxy routing with these files: tests/e2e/test_ring_{nginx,haproxy}.c.
set -uo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-/usr/bin/python3}
fail=0; n=0
check() { n=$((n + 1)); if "$@"; then echo "ok $n - $name"; else echo "not ok $n - $name"; fail=1; fi; }

out=$(/usr/sbin/haproxy -c -f deploy/haproxy.cfg 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
name="haproxy -c accepts deploy/haproxy.cfg as shipped"; check [ "$rc" -eq 0 ]

"$py" - <<'PYEOF'
import re, sys
fail = 0
def check(cond, what):
    global fail
    print(("ok" if cond else "not ok") + " - " + what)
    fail |= not cond
def peers_block(text, pattern):
    block = text.split("# BEGIN PEERS", 1)[1].split("# END PEERS", 1)[0]
    return [m.group(1) for m in re.finditer(pattern, block)]
peers_yaml = open("deploy/kubernetes/peers.yaml").read()
data = peers_yaml.split("peers: |", 1)[1]
peers = [l.split("#")[0].strip() for l in data.splitlines()]
peers = [p for p in peers if p]
nginx = open("deploy/nginx.conf").read()
haproxy = open("deploy/haproxy.cfg").read()
ng = peers_block(nginx, r"(?m)^\s*server\s+(\S+?);")
hp = peers_block(haproxy, r"(?m)^\s*server\s+\S+\s+(\S+)")
check(len(peers) >= 2, f"peers.yaml lists the peers ({len(peers)})")
check(ng == peers, f"nginx.conf's upstream servers are peers.yaml's names in order ({ng})")
check(hp == peers, f"haproxy.cfg's servers are peers.yaml's names in order ({hp})")
def norm(block):
    return [" ".join(l.split()) for l in block.strip().splitlines()]
m1 = re.search(r'(?ms)^\s*(map "\$uri \$http_x_sequence_id" \$ss_key \{.*?^\s*\})', nginx)
readme = open("deploy/README.md").read()
m2 = re.search(r'(?ms)http-snippet: \|\n(\s*map "\$uri \$http_x_sequence_id" \$ss_key \{.*?^\s*\})', readme)
check(m1 is not None and m2 is not None, "nginx.conf and README.md both have the $ss_key map")
if m1 and m2:
    check(norm(m1.group(1)) == norm(m2.group(1)), "README.md's http-snippet map is nginx.conf's")
ing = open("deploy/kubernetes/ingress.yaml").read()
check('upstream-hash-by: "$ss_key"' in ing, "the Ingress hashes on $ss_key")
sys.exit(fail)
PYEOF
rc=$?
name="names and key agree across nginx.conf, haproxy.cfg, peers.yaml, README.md"; check [ "$rc" -eq 0 ]
echo "1..$n"
exit $fail
