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

# A Debian package a test or script drives (chromium, haproxy): installed when
# its command is missing and we run as root with apt-get, else a warning.
appgw_debian_tool() {
    local command="$1" package="$2" what="$3"
    command -v "$command" >/dev/null 2>&1 && return 0
    [ -x "/usr/sbin/$command" ] && return 0
    appgw_debian_package "$package" "$what"
}

# A Debian package installed now (as root with apt-get), else a warning.
appgw_debian_package() {
    local package="$1" what="$2"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "appgw: installing $package for $what" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; } >&2 \
            || echo "appgw: could not install $package; $what will fail" >&2
    else
        echo "appgw: $package is missing (Debian: apt-get install $package); $what will fail" >&2
    fi
}

# The WAF's engine and rules: Debian's libmodsecurity3 and modsecurity-crs,
# and the GeoIP country databases of GeoMatch rules (geoip-database).
# Installed when missing and running as root; otherwise a configuration with
# a WAF policy (or a GeoMatch rule) is refused with a message that names the
# packages.
appgw_waf_packages() {
    if [ ! -f /usr/share/GeoIP/GeoIP.dat ] || [ ! -f /usr/share/GeoIP/GeoIPv6.dat ]; then
        if [ "$(id -u)" = 0 ]; then appgw_debian_package geoip-database "WAF GeoMatch rules"; fi
    fi
    if [ -e /usr/lib/x86_64-linux-gnu/libmodsecurity.so.3 ] || ldconfig -p 2>/dev/null | grep -q 'libmodsecurity\.so\.3'; then
        [ -d /usr/share/modsecurity-crs/rules ] && return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "appgw: installing libmodsecurity3 and modsecurity-crs for the WAF" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmodsecurity3 modsecurity-crs; } >&2 \
            || echo "appgw: could not install libmodsecurity3 modsecurity-crs; WAF policies will be refused" >&2
    fi
}
