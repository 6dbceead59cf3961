#!/usr/bin/env bash
# The package as a user gets it; .ci/run's step "package", or on its own:
#
#   bash .ci/package.sh [PYTEST ARGS for the sdist's tests]
#
#   1. python -m build: the sdist, then the wheel built from the sdist; any
#      line of the build's output that says "warning" fails
#   2. twine check --strict; .ci/check_dist.py: the wheel holds every file of
#      the package and nothing else, the sdist all that the tests need
#   3. a fresh virtualenv in a temporary folder outside the checkout, the wheel
#      installed there with the extras redis and rabbitmq; .ci/smoke.py runs a
#      generated project against it from outside the checkout (migrate, check,
#      an invoice, its pay button, the admin)
#   4. the sdist unpacked, installed with the extra "test" into the same
#      virtualenv (pip builds it), and its tests run from the unpacked folder:
#      all but the browser tests and the ones that need Redis, PostgreSQL and
#      real Celery workers (.ci/run runs those from the checkout)
#   5. the wheel and Django 4.2 in another fresh virtualenv, and the smoke test
#      again: the oldest Django that setup.py allows
#
# pip reaches the package index as this machine's pip is set up to.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}
PYTHON=${PYTHON:-python3}
# The sdist's test run: two processes, like make test. The script's
# arguments go to that pytest (e.g. -x, or -k to leave tests out).
SDIST_WORKERS=${SDIST_WORKERS:-2}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

part() {
    echo
    echo "--- $* ($(date +%H:%M:%S))"
}

fail() {
    echo "PACKAGE FAILED: $*" >&2
    exit 1
}

part "build the sdist and the wheel"
# A SOURCES.txt left by an earlier build is read back into the next sdist.
rm -rf build django_payments_ru.egg-info
log=$WORK/build.log
# Without PYTHONDONTWRITEBYTECODE: with it, distutils warns that it does not
# byte-compile, which says nothing about the package.
set +e
env -u PYTHONDONTWRITEBYTECODE "$BIN/python" -m build --outdir "$WORK/dist" . \
    >"$log" 2>&1
status=$?
set -e
rm -rf build django_payments_ru.egg-info
if [ "$status" -ne 0 ]; then
    cat "$log"
    fail "python -m build: exit code $status"
fi
if grep -i "warn" "$log"; then
    fail "the build warns (above)"
fi
tail -n 1 "$log"

part "twine check, what the distributions hold"
"$BIN/twine" check --strict "$WORK"/dist/*
"$BIN/python" .ci/check_dist.py "$WORK/dist"
WHEEL=$(echo "$WORK"/dist/*.whl)
SDIST=$(echo "$WORK"/dist/*.tar.gz)

part "the wheel in a fresh virtualenv outside the checkout"
VENV=$WORK/venv
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "$WHEEL[redis,rabbitmq]"
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -m django --version
case "$VENV" in "$ROOT"/*) fail "the virtualenv is inside the checkout" ;; esac
# From a folder outside the checkout, so that nothing of the source tree can
# be imported (-I: no PYTHONPATH, no user site, not the script's folder).
(cd "$WORK" && "$VENV/bin/python" -I "$ROOT/.ci/smoke.py" "$WORK/smoke")

part "the sdist's tests, from the unpacked sdist"
tar -xzf "$SDIST" -C "$WORK"
UNPACKED=$WORK/$(basename "$SDIST" .tar.gz)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "$UNPACKED[test]"
# The browser tests need Playwright's browser, the others listed need Redis,
# PostgreSQL and real workers; .ci/run runs them all from the checkout.
(
    cd "$UNPACKED"
    env -u DATABASE_URL -u REDIS_URL "$VENV/bin/python" -m pytest -q \
        -n "$SDIST_WORKERS" -p no:randomly \
        --ignore=tests/browser \
        --ignore=tests/test_celery_wiring.py \
        --ignore=tests/test_faults.py \
        "$@"
)

part "the smoke test on Django 4.2, in another fresh virtualenv"
# A virtualenv of its own: pip resolves what goes with Django 4.2 (Django REST
# framework 3.18 needs Django 5.2).
VENV42=$WORK/venv42
"$PYTHON" -m venv "$VENV42"
"$VENV42/bin/python" -m pip install -q --disable-pip-version-check \
    "$WHEEL[redis,rabbitmq]" "Django>=4.2,<5"
"$VENV42/bin/python" -m pip check
"$VENV42/bin/python" -m django --version
(cd "$WORK" && "$VENV42/bin/python" -I "$ROOT/.ci/smoke.py" "$WORK/smoke42")

echo
echo "--- package: built without warnings, the wheel works installed, the sdist's tests pass"
