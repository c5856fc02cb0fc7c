#!/usr/bin/env bash
# Re-resolve dev-locks/airflow-<minor>.txt (the test environment of `make test-matrix`) as of an
# Airflow release's date, the way Airflow's own constraint files are made: the newest version of
# every dependency that existed then. Then derive the runtime constraints users install with
# (constraints/airflow-<minor>.txt) from it.
#   scripts/compile_constraints.sh 3.2 3.2.2 2026-05-29T06:00:00Z
# Needs uv (pip install uv). Afterwards run `make test-matrix` to prove the lock works.
set -euo pipefail
cd "$(dirname "$0")/.."
minor=$1 release=$2 date=$3
inputs=$(mktemp)
trap 'rm -f "$inputs"' EXIT
{
    echo "apache-airflow==$release"
    echo "httpx>=0.27" "pydantic>=2.6" "h11>=0.14" "hatchling>=1.21" "editables" | tr ' ' '\n'
    # the test extra without the linters (they run on the newest Airflow only)
    echo "pytest>=8" "pytest-mock>=3.12" "pytest-asyncio>=0.24" "pytest-timeout>=2.3" \
        "hypothesis>=6.100" "psutil>=5.9" "cryptography>=42" "anthropic>=0.40" | tr ' ' '\n'
    # Airflow < 3.2 builds a provider's connection form fields with flask-appbuilder's WTForms.
    case $minor in 3.0 | 3.1) echo "flask-appbuilder" ;; esac
} >"$inputs"
{
    echo "# Development lock of \`make test-matrix\` for Airflow $release (Python 3.11): Airflow, this"
    echo "# provider's dependencies and its test tooling. Not for production: constraints/airflow-$minor.txt."
    echo "# Resolved as of Airflow $release's release ($date), the way Airflow's own constraint files are:"
    echo "#   scripts/compile_constraints.sh $minor $release $date"
    echo "# Install (make test-matrix does): pip install --no-deps -r dev-locks/airflow-$minor.txt, then the provider --no-deps -e."
    case $minor in 3.0 | 3.1) echo "# flask-appbuilder is here because Airflow < 3.2 needs it to show a provider's connection form fields." ;; esac
    uv pip compile -q --python-version 3.11 --exclude-newer "$date" --no-header --no-annotate "$inputs"
} >"dev-locks/airflow-$minor.txt.new"
mv "dev-locks/airflow-$minor.txt.new" "dev-locks/airflow-$minor.txt"
scripts/runtime_constraints.sh "dev-locks/airflow-$minor.txt"
