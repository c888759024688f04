//! The POSIX `sh` scripts run on nodes. Each is sent as one argv word (`sh -c SCRIPT k8soidc
//! ARG...`) with every value as a further argv word, so a value is never parsed by a shell;
//! file contents travel on stdin, base64-encoded one file per line (`read` in sh never reads
//! past a newline, so several files share one stdin safely). Every script is one round trip.
//!
//! `patch` costs at most four round trips per host besides health polling: [`OPEN`] +
//! [`BEGIN`] (privileges, lock, detection, every read), [`apply`] (back up, stage, rename,
//! restart), [`VERIFY`] (read back checksums), [`TRANSFORM`] (kubeadm-config ConfigMap, kubeadm
//! only). A list of commands travels in argv as `COUNT WORD...` groups; [`FIRST_FN`] runs the
//! first COUNT words of its arguments as a command, so no value is ever parsed by a shell.

/// Prints `root`, `sudo` (passwordless sudo works) or `nosudo`. Runs as the login user.
pub(crate) const WHOAMI: &str = r#"if [ "$(id -u)" = 0 ]; then echo root; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo sudo; else echo nosudo; fi"#;

/// `STATE_DIR`: holds `STATE_DIR/lock` while stdin keeps receiving a `.` at least every 30 s
/// (the client sends one every 5 s). Client gone or stdin closed: the lock is released.
/// Exit 75: someone else holds it.
pub(crate) const LOCK: &str = r#"umask 077
mkdir -p "$1" || exit 70
exec flock -n -E 75 "$1/lock" sh -c 'echo K8SOIDC-LOCKED; while [ "$(timeout 30 head -c1)" = . ]; do :; done'"#;

/// `PATH...`: for each path, a line `K8SOIDC-FILE present|absent PATH` then a line with its
/// content in base64 (empty when absent).
pub(crate) fn read() -> String {
    format!("{RECORD_FN}{}", r#"for p in "$@"; do record "$p"; done"#)
}

/// `record PATH`: the `K8SOIDC-FILE` record of one file (see [`read`]).
const RECORD_FN: &str = r#"record() {
  if [ -f "$1" ]; then
    printf 'K8SOIDC-FILE present %s\n' "$1"
    base64 -w0 < "$1" || exit 71
    printf '\n'
  else
    printf 'K8SOIDC-FILE absent %s\n\n' "$1"
  fi
}
"#;

/// Shared helpers: `staging PATH` prints where the new content of PATH is written before the
/// rename: in the parent of PATH's directory (outside a watched directory such as
/// /etc/kubernetes/manifests) when that is the same filesystem, else a dot file beside PATH
/// (the kubelet ignores dot files).
const STAGING_FN: &str = r#"staging() {
  d=$(dirname "$1"); up=$(dirname "$d"); b=$(basename "$1")
  if [ "$(stat -c %d "$up" 2>/dev/null)" = "$(stat -c %d "$d" 2>/dev/null)" ] && [ -w "$up" ]; then
    printf '%s/.k8soidc-%s.new\n' "$up" "$b"
  else
    printf '%s/.k8soidc-%s.new\n' "$d" "$b"
  fi
}
"#;

/// `first COUNT WORD...`: runs the first COUNT words as a command (the rest are ignored): the
/// loop keeps the first COUNT of the function's own positional parameters (its local list).
pub(crate) const FIRST_FN: &str = r#"first() {
  _n=$1; shift; _i=0
  for _w do
    if [ $_i -lt $_n ]; then set -- "$@" "$_w"; fi
    shift; _i=$((_i + 1))
  done
  "$@"
}
"#;

/// Runs as the login user, first word: BODY, then BODY's arguments. Prints
/// `K8SOIDC-PRIV root|sudo|nosudo`, then runs BODY as root (directly, or through `sudo -n`);
/// with `nosudo` it runs nothing. The privileges check and the body share one round trip.
pub(crate) const OPEN: &str = r#"b=$1; shift
if [ "$(id -u)" = 0 ]; then echo K8SOIDC-PRIV root; exec sh -c "$b" k8soidc "$@"; fi
if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo K8SOIDC-PRIV sudo; exec sudo -n sh -c "$b" k8soidc "$@"; fi
echo K8SOIDC-PRIV nosudo"#;

/// The body run by [`OPEN`]: `STATE_DIR lock|nolock N PATH*N (KEY IFFILE COUNT WORD...)...`.
/// 1. `lock`: takes `STATE_DIR/lock` (flock on fd 9, held by this shell until it ends; exit 75
///    when someone else holds it, 127 without flock) and prints `K8SOIDC-LOCKED`;
/// 2. prints each PATH as [`read`] does;
/// 3. for each command group whose IFFILE is `-` or an existing file, runs the COUNT words:
///    its standard output (exact bytes) as a `K8SOIDC-FILE present KEY` record, or
///    `K8SOIDC-FILE absent KEY` and `K8SOIDC-NOTE KEY <first line of its error>` when it fails
///    or is missing;
/// 4. prints `K8SOIDC-READ-END`; with `lock`, then holds the lock like [`LOCK`] while stdin
///    keeps receiving a `.` at least every 30 s.
pub(crate) fn begin() -> String {
    format!(
        "{FIRST_FN}{RECORD_FN}{}",
        r#"state=$1 mode=$2 n=$3; shift 3
if [ "$mode" = lock ]; then
  umask 077
  mkdir -p "$state" || exit 70
  exec 9>>"$state/lock" || exit 70
  flock -n -E 75 9 || exit $?
  echo K8SOIDC-LOCKED
fi
i=0
while [ $i -lt $n ]; do
  record "$1"; shift; i=$((i + 1))
done
while [ $# -ge 3 ]; do
  key=$1 iff=$2 c=$3; shift 3
  if [ "$iff" = - ] || [ -f "$iff" ]; then
    if ! command -v "$1" >/dev/null 2>&1; then
      printf 'K8SOIDC-FILE absent %s\n\nK8SOIDC-NOTE %s %s: command not found\n' "$key" "$key" "$1"
    else
      t=$(mktemp) || exit 71
      if first "$c" "$@" </dev/null >"$t" 2>"$t.err" 9>&-; then
        printf 'K8SOIDC-FILE present %s\n' "$key"; base64 -w0 < "$t"; printf '\n'
      else
        printf 'K8SOIDC-FILE absent %s\n\nK8SOIDC-NOTE %s %s\n' "$key" "$key" "$(head -n1 "$t.err")"
      fi
      rm -f "$t" "$t.err"
    fi
  fi
  shift "$c"
done
echo K8SOIDC-READ-END
if [ "$mode" = lock ]; then
  while [ "$(timeout 30 head -c1)" = . ]; do :; done
fi"#
    )
}

/// `STATE_DIR N (PATH SHA256|absent MODE)*N (COUNT WORD...)...`, stdin: one base64 line per
/// file. The whole file transaction in one round trip, each part only when the one before
/// succeeded: 1. each file still has the content that was read (SHA-256; else exit 73);
/// 2. every file is backed up to STATE_DIR/backups/<UTC time>/ (0700 dir, 0600 files, `FILES`
/// index with state, mode, owner and path, `SHA256SUMS`), verified and fsynced (prints
/// `K8SOIDC-BACKUP <id>`); 3. each new content goes to its staging path with the target's owner
/// and mode (or MODE for a new file), fsynced (prints `K8SOIDC-STAGED <path>`) — a failure in
/// 1-3 removes the partial backup, changes nothing and exits 72 or 73; 4. the renames into
/// place, atomic on one filesystem, directories fsynced (prints `K8SOIDC-COMMITTED`; exit 74);
/// 5. each restart command
/// (`COUNT WORD...`, output on stderr) in order; a failing one prints
/// `K8SOIDC-RESTART-FAILED <status>` and exits 79, and the client restores the backup.
pub(crate) fn apply() -> String {
    format!(
        "{STAGING_FN}{FIRST_FN}{}",
        r#"state=$1 n=$2; shift 2
fail() { echo "k8soidc: $*" >&2; [ -n "${b:-}" ] && rm -rf "$b"; exit 72; }
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "p_$k=\$1 w_$k=\$2 m_$k=\$3"; shift 3
done
ts=$(date -u +%Y%m%dT%H%M%SZ); id=$ts; i=1
umask 077
mkdir -p "$state/backups" || fail "cannot create $state/backups"
while [ -e "$state/backups/$id" ]; do i=$((i+1)); id=$ts-$i; done
b=$state/backups/$id
mkdir "$b" || { b=; fail "cannot create backup directory $state/backups/$id"; }
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "path=\$p_$k want=\$w_$k"
  if [ -f "$path" ]; then
    sum=$(sha256sum < "$path" | cut -d' ' -f1)
    if [ "$sum" != "$want" ]; then echo "k8soidc: $path changed since it was read; run again" >&2; rm -rf "$b"; exit 73; fi
    cp "$path" "$b/$k" || fail "cannot back up $path to $b"
    chmod 0600 "$b/$k" || fail "cannot chmod $b/$k"
    printf '%s\tpresent\t%s\t%s\t%s\n' "$k" "$(stat -c %a "$path")" "$(stat -c %u:%g "$path")" "$path" >> "$b/FILES" || fail "cannot write $b/FILES"
  else
    if [ "$want" != absent ]; then echo "k8soidc: $path disappeared since it was read; run again" >&2; rm -rf "$b"; exit 73; fi
    printf '%s\tabsent\t-\t-\t%s\n' "$k" "$path" >> "$b/FILES" || fail "cannot write $b/FILES"
  fi
done
(cd "$b" && sha256sum FILES $(cut -f1,2 FILES | grep present | cut -f1) > SHA256SUMS && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 || fail "cannot write or verify the backup in $b (disk full?)"
chmod 0600 "$b"/* || fail "cannot chmod $b"
sync "$b" "$b"/* 2>/dev/null || sync
echo "K8SOIDC-BACKUP $id"
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "path=\$p_$k mode=\$m_$k"
  IFS= read -r line || fail "missing content for $path on stdin"
  mkdir -p "$(dirname "$path")" || fail "cannot create $(dirname "$path")"
  t=$(staging "$path")
  rm -f "$t"
  printf '%s' "$line" | base64 -d > "$t" || { rm -f "$t"; fail "cannot write $t"; }
  if [ -f "$path" ]; then
    chown "$(stat -c %u:%g "$path")" "$t" && chmod "$(stat -c %a "$path")" "$t"
  else
    chmod "$mode" "$t"
  fi || { rm -f "$t"; fail "cannot set owner and mode of $t"; }
  sync "$t" 2>/dev/null || sync
  eval "t_$k=\$t"
  echo "K8SOIDC-STAGED $t"
done
b=
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "t=\$t_$k path=\$p_$k"
  mv -f "$t" "$path" || { echo "k8soidc: cannot rename $t to $path" >&2; exit 74; }
  sync "$(dirname "$path")" 2>/dev/null || sync
done
echo K8SOIDC-COMMITTED
while [ $# -gt 0 ]; do
  c=$1; shift
  first "$c" "$@" </dev/null >&2 || { echo "K8SOIDC-RESTART-FAILED $?"; exit 79; }
  shift "$c"
done"#
    )
}

/// `PATH...`: `SHA256 PATH` per file (`absent PATH` when missing), to check that what was
/// written is what is there.
pub(crate) const VERIFY: &str = r#"for p in "$@"; do
  if [ -f "$p" ]; then printf '%s %s\n' "$(sha256sum < "$p" | cut -d' ' -f1)" "$p"; else printf 'absent %s\n' "$p"; fi
done"#;

/// `SHA256 COUNT READ_WORD*COUNT WRITE_WORD...`, stdin: the new content. Compare and swap in
/// one round trip: runs the read command; when its output's SHA-256 is still SHA256 (what was
/// read and edited), runs the write command with stdin; else exits 73 and writes nothing.
pub(crate) fn transform() -> String {
    format!(
        "{FIRST_FN}{}",
        r#"want=$1 c=$2; shift 2
t=$(mktemp) || exit 71
if ! first "$c" "$@" </dev/null >"$t" 2>"$t.err"; then head -n1 "$t.err" >&2; rm -f "$t" "$t.err"; exit 80; fi
sum=$(sha256sum < "$t" | cut -d' ' -f1); rm -f "$t" "$t.err"
if [ "$sum" != "$want" ]; then echo "k8soidc: it changed since it was read; run again" >&2; exit 73; fi
shift "$c"
exec "$@""#
    )
}

/// `STATE_DIR ID`: puts back every file of backup ID (checksums verified first): present
/// files through a staging file and a rename, with their recorded owner and mode; files that
/// were absent are removed.
pub(crate) fn restore() -> String {
    format!(
        "{STAGING_FN}{}",
        r#"b=$1/backups/$2
[ -f "$b/FILES" ] || { echo "k8soidc: no backup $2 in $1/backups" >&2; exit 76; }
(cd "$b" && sha256sum -c --quiet SHA256SUMS) >&2 || { echo "k8soidc: backup $2 fails its checksums; not restoring" >&2; exit 77; }
while IFS="$(printf '\t')" read -r k state mode owner path; do
  if [ "$state" = present ]; then
    mkdir -p "$(dirname "$path")"
    t=$(staging "$path")
    cp "$b/$k" "$t" && chown "$owner" "$t" && chmod "$mode" "$t" && { sync "$t" 2>/dev/null || sync; } && mv -f "$t" "$path" || { echo "k8soidc: cannot restore $path" >&2; exit 78; }
  else
    rm -f "$path"
  fi
  echo "K8SOIDC-RESTORED $path"
done < "$b/FILES"
sync"#
    )
}

/// `STATE_DIR`: lists backups, newest first: `ID<TAB>path path...`.
pub(crate) const LIST: &str = r#"cd "$1/backups" 2>/dev/null || exit 0
for id in $(ls -1r); do
  [ -f "$id/FILES" ] || continue
  printf '%s\t%s\n' "$id" "$(cut -f5 "$id/FILES" | tr '\n' ' ')"
done"#;

/// `PROCESS READYZ LIVEZ UNIT N ADMIN_ARGV(N words) FLAG...`: exit 0 and print `ready` when
/// (UNIT given) the unit is active, (PROCESS given) a process named PROCESS runs whose
/// `--oidc-*`/`--authentication-config` flags are exactly FLAG..., and READYZ (LIVEZ when READYZ
/// is 404) answers 2xx/3xx like a kubelet probe (prints `ready PID`) — or, when it refuses an
/// anonymous request (401/403) and an ADMIN_ARGV is given (N > 0), that authenticated check
/// (the node's kubectl with its admin kubeconfig) succeeds; else exit 1 with the reason.
///
/// The script's own process and its ancestors (`sudo`, the login shell) are skipped: their
/// argv carries PROCESS and FLAG... as words too (`sh -c SCRIPT k8soidc kube-apiserver ...
/// --oidc-...`), so without the skip the check found itself whenever its PID sorted before the
/// API server's in `/proc` (e.g. 1234 before 97): it then passed with no API server at all, or
/// printed a different PID on every run and never saw the same process healthy twice.
pub(crate) const HEALTH: &str = r#"proc=$1 readyz=$2 livez=$3 unit=$4 nadmin=$5; shift 5
admin_argv=
i=0
while [ "$i" -lt "$nadmin" ] && [ $# -gt 0 ]; do
  admin_argv="$admin_argv $(printf '%s' "$1" | base64 -w0)"; shift; i=$((i + 1))
done
if [ -n "$unit" ] && ! systemctl is-active --quiet "$unit"; then echo "unit $unit is not active"; exit 1; fi
if [ -n "$proc" ]; then
  want=$(for f in "$@"; do printf '%s\n' "$f"; done | sort)
  parent() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "$2"; }
  self=" $$ " p=$$ n=0
  while [ $n -lt 64 ] && p=$(parent "$p") && [ "$p" -gt 1 ]; do self="$self$p "; n=$((n + 1)); done
  found=
  for d in /proc/[0-9]*; do
    case $self in *" ${d#/proc/} "*) continue ;; esac
    cmd=$(tr '\0' '\n' 2>/dev/null < "$d/cmdline") || continue
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
if [ -n "$admin_argv" ] && { [ "$code" = 401 ] || [ "$code" = 403 ]; }; then
  set --
  for w in $admin_argv; do set -- "$@" "$(printf '%s' "$w" | base64 -d)"; done
  if a=$(timeout 10 "$@" 2>&1); then echo "ready ${found:-}"; exit 0; fi
  echo "$readyz answered $code to an anonymous request, and \`$*\` failed: $(printf '%s\n' "$a" | head -n1)"; exit 1
fi
echo "$readyz answered ${code:-nothing} $(printf '%s\n' "$r" | head -n1)"; exit 1"#;

/// `UNIT|-`: the last API server log lines (crictl, else /var/log/pods; journalctl for a unit).
pub(crate) const LOGS: &str = r#"if [ "$1" != - ]; then journalctl -u "$1" -n 20 --no-pager 2>&1; exit 0; fi
if command -v crictl >/dev/null 2>&1; then
  c=$(crictl ps -a --name kube-apiserver -q 2>/dev/null | head -n1)
  [ -n "$c" ] && crictl logs --tail 20 "$c" 2>&1 && exit 0
fi
f=$(ls -t /var/log/pods/*kube-apiserver*/kube-apiserver/*.log 2>/dev/null | head -n1)
[ -n "$f" ] && tail -n 20 "$f""#;

/// `KEY PROGRAM ARG...`: runs the command; its standard output (exact bytes) as a
/// `K8SOIDC-FILE present KEY` record like [`read`], or `K8SOIDC-FILE absent KEY` and the first
/// line of its error on stderr when it fails or is missing.
pub(crate) const READ_COMMAND: &str = r#"key=$1; shift
if ! command -v "$1" >/dev/null 2>&1; then printf 'K8SOIDC-FILE absent %s\n\n' "$key"; echo "$1: command not found" >&2; exit 0; fi
t=$(mktemp) || exit 71
if "$@" >"$t" 2>"$t.err"; then
  printf 'K8SOIDC-FILE present %s\n' "$key"; base64 -w0 < "$t"; printf '\n'
else
  printf 'K8SOIDC-FILE absent %s\n\n' "$key"; head -n1 "$t.err" >&2
fi
rm -f "$t" "$t.err""#;
