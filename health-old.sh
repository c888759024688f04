proc=$1 readyz=$2 livez=$3 unit=$4; shift 4
if [ -n "$unit" ] && ! systemctl is-active --quiet "$unit"; then echo "unit $unit is not active"; exit 1; fi
if [ -n "$proc" ]; then
  want=$(for f in "$@"; do printf '%s\n' "$f"; done | sort)
  found=
  for d in /proc/[0-9]*; do
    cmd=$(tr '\0' '\n' < "$d/cmdline" 2>/dev/null) || continue
    printf '%s\n' "$cmd" | grep -qx -e "$proc" -e ".*/$proc" || continue
    have=$(printf '%s\n' "$cmd" | grep -E '^--(oidc-|authentication-config)' | sort)
    if [ "$have" = "$want" ]; then found=${d#/proc/}; break; fi
  done
  [ -n "$found" ] || { echo "no $proc process with the expected flags is running yet"; exit 1; }
fi
probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -sSk -o /dev/null -w '\n%{http_code}' --max-time 5 "$1" 2>&1
  else
    wget -q --no-check-certificate -T 5 -O /dev/null "$1" 2>&1 && printf '\n200' || printf '\n000'
  fi
}
r=$(probe "$readyz"); code=$(printf '%s\n' "$r" | tail -n1)
if [ "$code" = 404 ]; then r=$(probe "$livez"); code=$(printf '%s\n' "$r" | tail -n1); fi
case $code in 2??|3??) echo "ready ${found:-}"; exit 0 ;; esac
echo "$readyz answered ${code:-nothing} $(printf '%s\n' "$r" | head -n1)"; exit 1