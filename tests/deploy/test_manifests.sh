#!/usr/bin/env bash
# deploy/kubernetes/*.yaml against the Kubernetes schemas and spikeserve's rules
# (tests/deploy/validate.mjs: the npm packages kubernetes-models and yaml, locked in
# tests/deploy/package-lock.json and installed here when missing or older than the lock).
# Then the validator must refuse broken copies made on the fly, one fault each: a misspelt
# field, a wrong type, broken YAML, an unknown kind, a writable root filesystem, a peers list
# one short of the replicas, a missing required field, Service environment variables on.
set -uo pipefail
cd "$(dirname "$0")/../.."
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "not ok - $tool is not installed"; exit 1; }
done
stamp=tests/deploy/node_modules/.package-lock.json
if [ ! -e "$stamp" ] || [ tests/deploy/package-lock.json -nt "$stamp" ]; then
    (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error) || { echo "not ok - npm ci in tests/deploy"; exit 1; }
fi
fail=0; n=0
check() { # name command... (passes when the command passes)
    n=$((n + 1))
    if "$@"; then echo "ok $n - $name"; else echo "not ok $n - $name"; fail=1; fi
}
out=$(node tests/deploy/validate.mjs deploy/kubernetes 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
name="deploy/kubernetes validates (schemas, unknown fields, spikeserve's rules)"; check [ "$rc" -eq 0 ]
name="every manifest was read (7 documents)"; check grep -q '^7 documents, 0 problems$' <<<"$out"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# broken FILE SED-EXPR EXPECTED-MESSAGE: a copy of deploy/kubernetes with FILE edited by
# SED-EXPR must be refused with a line matching EXPECTED-MESSAGE
broken() {
    local file=$1 expr=$2 want=$3 dir="$tmp/$n"
    mkdir -p "$dir" && cp deploy/kubernetes/*.yaml "$dir/"
    sed -i "$expr" "$dir/$file"
    if cmp -s "deploy/kubernetes/$file" "$dir/$file"; then
        name="broken copy: $want (the edit changed nothing)"; check false; return
    fi
    local o; o=$(node tests/deploy/validate.mjs "$dir" 2>&1); local r=$?
    name="refused: $want"
    check [ "$r" -ne 0 ]
    grep -q -- "$want" <<<"$o" || { echo "$o" | sed 's/^/#   /'; name="message: $want"; check false; }
}
broken statefulset.yaml 's/^  replicas: 3 /  replica: 3 /' "unknown field spec.replica"
broken statefulset.yaml 's/containerPort: 8080/containerPort: eighty/' "containerPort must be integer"
broken statefulset.yaml 's/^  serviceName: spikeserve-peers/  serviceName: [spikeserve-peers/' "YAML: "
broken pdb.yaml 's/^kind: PodDisruptionBudget/kind: PodDisruptionBudgets/' "unknown apiVersion/kind"
broken statefulset.yaml 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "readOnlyRootFilesystem must be true"
broken peers.yaml '/spikeserve-2.spikeserve-peers/d' "lists 2 peers, the StatefulSet has 3 replicas"
broken services.yaml '0,/^  clusterIP: None/s//  clusterIP: 10.0.0.1/' "is not headless"
broken statefulset.yaml '/^  selector:/,/^      app.kubernetes.io\/name: spikeserve/d' "must have required property selector"
broken statefulset.yaml '/enableServiceLinks: false/d' "enableServiceLinks must be false"
broken statefulset.yaml 's/^            - "160"$/            - "175"/' "is shorter than preStop's 10 s + --handoff-timeout 175 s"
broken statefulset.yaml 's/^            - name: http$/            - nmae: http/' "unknown field spec.template.spec.containers\[0\].ports\[0\].nmae"
echo "1..$n"
exit $fail
