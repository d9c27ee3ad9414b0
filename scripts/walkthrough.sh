#!/usr/bin/env bash
# The README's "Promoting a model by pull request", start to finish, with keys made here:
# two people (alice, the author; bob, the reviewer) get SSH keys, `baton init` makes a fresh
# registry, then register -> promote -> check (fails: approvals) -> approve -> check (passes)
# -> merge -> deployed -> rollback -> deployed again -> history.
#
# Usage: scripts/walkthrough.sh [WORKDIR]   (default: a new temporary folder, kept and printed)
# The baton binary is $BATON, else `cargo run -q --` in this repository.
# Needs git and ssh-keygen (openssh-client). Touches neither your git config nor ~/.ssh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${BATON:-}" ]]; then
  baton_cmd=("$BATON")
else
  baton_cmd=(cargo run -q --manifest-path "$here/Cargo.toml" --)
fi
baton() { "${baton_cmd[@]}" "$@"; }

work="${1:-$(mktemp -d "${TMPDIR:-/tmp}/baton-walkthrough.XXXXXX")}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
# Only this walkthrough's settings: no ~/.gitconfig, no system config.
export GIT_CONFIG_GLOBAL="$work/gitconfig" GIT_CONFIG_NOSYSTEM=1
: >"$GIT_CONFIG_GLOBAL"

# Print a step the way the README shows it, then run it.
say() { printf '\n## %s\n' "$*"; }
run() {
  local shown=() a
  for a in "$@"; do
    if [[ -z "$a" || "$a" =~ [[:space:]] ]]; then shown+=("'$a'"); else shown+=("$a"); fi
  done
  printf '$ %s\n' "${shown[*]}"
  "$@"
}

# Act as one of the two people: the commit identity and the SSH key that signs (a path
# relative to the registry, where baton runs git).
as() {
  run git config user.name "$1"
  run git config user.email "$1@example.com"
  run git config user.signingkey "../keys/$1"
}

say "0. Two people, two SSH keys (alice registers and promotes, bob reviews)"
cd "$work"
mkdir -p keys
for who in alice bob; do
  run ssh-keygen -q -t ed25519 -N '' -C "$who@example.com" -f "keys/$who"
done

say "1. A fresh registry with alice as signer and policy owner"
run git init -q -b main registry
run cd registry
run git config gpg.format ssh # approvals are SSH-signed commits (docs/approvals.md)
as alice
run baton init --key ../keys/alice.pub --email alice@example.com .
# Bob reviews: his key signs approvals, and he joins the group the gates name. The example
# version starts in staging (deployed from the first commit), and staging needs one approval
# from ml-leads, so the promotion below needs bob.
printf 'bob@example.com namespaces="git" %s\n' "$(cut -d' ' -f1,2 ../keys/bob.pub)" \
  >>.baton/allowed_signers
sed -i.orig \
  -e 's/^  ml-leads: \[alice@example.com\]$/  ml-leads: [alice@example.com, bob@example.com]/' \
  -e 's/^      - metric: {name: accuracy, min: 0.80}$/&\n      - approvals: {min: 1, from: [group:ml-leads]}/' \
  baton.yaml
sed -i.orig -e 's/^stage: development$/stage: staging/' models/example/versions/1.yaml
rm -f baton.yaml.orig models/example/versions/1.yaml.orig
run git add -A
run git commit -q -m "Start the model registry"
run baton validate
run baton serve --once
run baton status --state-dir .git/baton

say "2. Register a new build (it enters the first stage, development)"
run git switch -q -c register-example-2
mkdir -p artifacts/example/2
echo "example model, build 2" >artifacts/example/2/model.txt
echo '{"accuracy": 0.93}' >../metrics.json
run baton register example --artifact artifacts/example/2/model.txt --metrics ../metrics.json
run git add models/example/versions/2.yaml artifacts/example/2/model.txt
run git commit -q -m "Register example 2"
run baton check --base main --head HEAD
run git switch -q main
run git merge -q --no-ff -m "Merge register-example-2" register-example-2

say "3. Promote it to staging on a branch (archiving the version it replaces)"
run baton promote example 2 --to staging --commit --branch promote-example-2

say "4. Check: fails until someone other than alice approves"
printf '$ %s\n' "baton check --base main --head HEAD"
if baton check --base main --head HEAD; then
  echo "walkthrough: check passed without an approval" >&2
  exit 1
fi

say "5. Approve: alice may not approve her own change; bob signs an approval commit"
printf '$ %s\n' "baton approve example 2 --stage staging"
if baton approve example 2 --stage staging; then
  echo "walkthrough: alice approved her own change" >&2
  exit 1
fi
as bob
run baton approve example 2 --stage staging
run baton check --base main --head HEAD

say "6. Merge the pull request"
as alice
run git switch -q main
run git merge -q --no-ff -m "Merge promote-example-2" promote-example-2

say "7. Deployed: the controller judges what landed and deploys it"
run baton serve --once
run baton status --state-dir .git/baton

say "8. Roll back: revert the commit that put example 2 in staging"
run baton rollback example --env staging --commit
run baton serve --once
run baton status --state-dir .git/baton

say "9. The audit trail"
run baton history example

printf '\nwalkthrough done in %s\n' "$work"
