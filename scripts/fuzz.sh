#!/usr/bin/env bash
# Fuzzing of the engine with cargo-fuzz (libFuzzer + AddressSanitizer); not run by CI.
#
#   bash scripts/fuzz.sh                 # every target, 1e6 executions each
#   bash scripts/fuzz.sh engine 200000   # one target, a number of executions
#
# Targets (fuzz/fuzz_targets/): model_file (container, graph JSON and tensor validation, then a
# two-step run of what validates), event_binning (coordinates, timestamps, offsets, binnings),
# engine (arbitrary small networks: one thread == several threads, a stream fed in two parts ==
# the one-shot run). Seeds are in fuzz/seeds/<target> (committed); the corpus grows in
# fuzz/corpus/<target>, logs go to fuzz/logs/<target>.log, crashes to fuzz/artifacts/<target>.
#
# Toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=address, coverage passes) to
# rustc. By default this script uses the stable toolchain with RUSTC_BOOTSTRAP=1, which lets a
# stable rustc accept them (the machine the committed figures come from could not download a
# nightly); SNNSIM_FUZZ_TOOLCHAIN=nightly installs and uses a nightly toolchain instead.
# SNNSIM_FUZZ_SANITIZER=none builds without AddressSanitizer (about 7x more executions per
# second on the engine target; the build goes to fuzz/target/nosan).
# Run it niced on a shared machine: nice -n 19 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(model_file event_binning engine)
want="${1:-all}"
runs="${2:-1000000}"
[[ "$want" == all ]] || targets=("$want")

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
plus=()
if [[ "${SNNSIM_FUZZ_TOOLCHAIN:-stable}" == nightly ]]; then
    rustup toolchain install nightly --profile minimal
    plus=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

san=()
if [[ "${SNNSIM_FUZZ_SANITIZER:-address}" == none ]]; then
    san=(-s none --target-dir target/nosan)
fi

cd fuzz
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    extra=()
    [[ -f "dicts/$t.dict" ]] && extra+=("-dict=dicts/$t.dict")
    echo "== $t: $runs executions"
    start=$(date +%s)
    cargo "${plus[@]}" fuzz run "${san[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$runs" -max_len=16384 -print_final_stats=1 "${extra[@]}" 2>&1 | tee "logs/$t.log"
    echo "== $t: $(( $(date +%s) - start )) s, corpus $(ls "corpus/$t" | wc -l) files" \
        | tee -a "logs/$t.log"
done
