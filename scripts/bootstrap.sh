# Sourced by scripts/appgw and scripts/test: make .venv with the project installed.
# A fresh machine needs only python3 (with venv). The install is redone when
# pyproject.toml changes.
appgw_bootstrap() {
    local extras="${1:-}"
    local venv="$here/.venv"
    local stamp="$venv/.installed${extras:+-$extras}"
    if [ ! -x "$venv/bin/python" ]; then
        echo "appgw: creating $venv" >&2
        python3 -m venv "$venv" || {
            echo "appgw: python3 -m venv failed; install python3-venv (Debian: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
        echo "appgw: installing the project into $venv" >&2
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2 || true
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here${extras:+[$extras]}" >&2
        touch "$stamp"
    fi
}
