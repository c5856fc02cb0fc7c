#!/usr/bin/env bash
# Derive constraints/airflow-<minor>.txt, the runtime constraints users install with, from a
# development lock: Airflow, its dependencies and this provider's (pyproject.toml), pinned to the
# versions the tests ran with, and nothing else (no test tooling). On Airflow 3.0 and 3.1 it also
# pins flask-appbuilder (and its dependencies), which those releases need to show the
# connection form's extra fields; it is installed only when a user names it.
#   scripts/runtime_constraints.sh                           # every lock (make constraints)
#   scripts/runtime_constraints.sh dev-locks/airflow-3.2.txt # one
# Needs uv (pip install uv) and Python 3.11+. tests/distribution/test_constraints.py checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
locks=("$@")
[ ${#locks[@]} -gt 0 ] || locks=(requirements-lock.txt dev-locks/airflow-*.txt)
provider_deps=$("$PYTHON" -c 'import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
inputs=$(mktemp)
trap 'rm -f "$inputs"' EXIT
for lock in "${locks[@]}"; do
    release=$(sed -n 's/^apache-airflow==//p' "$lock")
    minor=${release%.*}
    out=constraints/airflow-$minor.txt
    mkdir -p constraints
    {
        echo "apache-airflow==$release"
        echo "$provider_deps"
        case $minor in 3.0 | 3.1) echo "flask-appbuilder" ;; esac
    } >"$inputs"
    {
        echo "# Runtime constraints for Airflow $release with airflow-provider-batches (Python 3.11): Airflow,"
        echo "# its dependencies and the provider's, at the versions this project tests. No test tooling."
        echo "# A constraint file pins, it does not install. From a clone (. is the provider; or its wheel):"
        case $minor in
        3.0 | 3.1) echo "#   pip install \"apache-airflow==$release\" flask-appbuilder . --constraint $out" ;;
        *) echo "#   pip install \"apache-airflow==$release\" . --constraint $out" ;;
        esac
        echo "# Derived from $lock by scripts/runtime_constraints.sh (make constraints)."
        uv pip compile -q --python-version 3.11 --no-header --no-annotate -c "$lock" "$inputs"
    } >"$out.new"
    mv "$out.new" "$out"
    echo "$out: $(grep -vc '^#' "$out") pins from $lock"
done
