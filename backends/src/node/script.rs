//! The POSIX `sh` scripts k8soidc sends to nodes, rendered from [`super::NodeStep`] values.
//!
//! Every script is self-contained text: it starts with a `# k8soidc: NAME` line, sets its
//! arguments with one `set -- 'WORD' ...` line (every value single-quoted by
//! [`crate::shell::quote`], so no value is ever parsed by a shell), carries file contents in a
//! quoted here-document (base64, one file per line) and then runs a fixed body. The executor
//! sends exactly this text as `sh -c SCRIPT` (`sudo -n sh -c SCRIPT` for a non-root login with
//! passwordless sudo), and `--dry-run -v` prints exactly this text: what is shown is what runs.
//!
//! A host costs at most four round trips: [`begin`] (privileges, lock, every read), [`commit`]
//! (back up, stage, rename, restart), [`await_healthy`] or [`await_reload`] (the wait, on the
//! node, then the read-back of the written files' checksums in the same round trip) and,
//! kubeadm only, [`compare_and_swap`] (the kubeadm-config ConfigMap). A list of commands travels as `COUNT WORD...` groups;
//! [`FIRST_FN`] runs the first COUNT words of its arguments as a command.
//!
//! The bodies use the shell's own expansions (`${p%/*}` for dirname, `${s%% *}` for cut,
//! `read` for head) wherever a program would only cut text: each program started on the node
//! costs about a millisecond of CPU: the scripts of a kubeadm patch (fast restart, no
//! admin.conf) started 71 programs and 27 subshells per host before, 42 and 18 now (BSD
//! process accounting, 2026-12-06).

use crate::shell;

/// The delimiter of the here-document that carries data (base64 lines never equal it).
const DATA: &str = "K8SOIDC_DATA";
/// The delimiter of the here-document holding the body [`begin`] runs as root.
const BODY: &str = "K8SOIDC_BODY";

/// `# k8soidc: NAME`, the `set --` line, then `body`; with `data`, the body reads it on
/// standard input from a quoted here-document.
pub(crate) fn render(name: &str, args: &[String], body: &str, data: Option<&[String]>) -> String {
    let mut s = format!("# k8soidc: {name}\n");
    if !args.is_empty() {
        s.push_str("set -- ");
        s.push_str(&shell::join(args));
        s.push('\n');
    }
    match data {
        None => {
            s.push_str(body);
            s.push('\n');
        }
        Some(lines) => {
            s.push_str("{\n");
            s.push_str(body);
            s.push_str(&format!("\n}} <<'{DATA}'\n"));
            for l in lines {
                s.push_str(l);
                s.push('\n');
            }
            s.push_str(DATA);
            s.push('\n');
        }
    }
    s
}

/// `record PATH`: the `K8SOIDC-FILE` record of one file: a line
/// `K8SOIDC-FILE present|absent PATH`, then its content in base64 (empty when absent).
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

/// `staging PATH` creates the file the new content of PATH is written to before the rename,
/// and prints its name: in the parent of PATH's directory (outside a watched directory such as
/// /etc/kubernetes/manifests) when that is the same filesystem, else beside PATH; always a dot
/// file (the kubelet ignores dot files) made by `mktemp`, so it is created exclusively with a
/// fresh name: whatever was planted at a staging path is never followed or written through.
/// `dirof PATH` sets `d` to the directory of PATH without starting a program: the text before
/// its last `/` (`/` for a file in /, `.` for a bare name).
/// `real PATH` prints the file PATH names: PATH itself, or the file a symlink at PATH points to
/// (a symlinked target is written through and the link kept; mode and owner are the target's).
const STAGING_FN: &str = r#"dirof() { case $1 in */*) d=${1%/*} d=${d:-/} ;; *) d=. ;; esac; }
staging() {
  dirof "$1"; dirof "$d"; up=$d; dirof "$1"; b=${1##*/}
  if s=$(stat -c %d "$up" "$d" 2>/dev/null) && [ "${s%%[!0-9]*}" = "${s##*[!0-9]}" ] && [ -w "$up" ]; then
    mktemp "$up/.k8soidc-$b.XXXXXX"
  else
    mktemp "$d/.k8soidc-$b.XXXXXX"
  fi
}
real() {
  if [ -L "$1" ]; then readlink -f "$1"; else printf '%s\n' "$1"; fi
}
"#;

/// `first COUNT WORD...`: runs the first COUNT words as a command (the rest are ignored).
const FIRST_FN: &str = r#"first() {
  _n=$1; shift; _i=0
  for _w do
    if [ $_i -lt $_n ]; then set -- "$@" "$_w"; fi
    shift; _i=$((_i + 1))
  done
  "$@"
}
"#;

/// Runs every `COUNT WORD...` group left in the arguments, in order, output on stderr; a
/// failing one prints `K8SOIDC-RESTART-FAILED <status>` and exits 79.
const RESTARTS: &str = r#"while [ $# -gt 0 ]; do
  c=$1; shift
  first "$c" "$@" </dev/null >&2 || { echo "K8SOIDC-RESTART-FAILED $?"; exit 79; }
  shift "$c"
done"#;

/// Appends `COUNT WORD...` for each command.
pub(crate) fn push_commands(args: &mut Vec<String>, commands: &[crate::Command]) {
    for c in commands {
        args.push((c.args.len() + 1).to_string());
        args.push(c.program.clone());
        args.extend(c.args.iter().cloned());
    }
}

/// Round trip 1, run as the login user: prints `K8SOIDC-PRIV root|sudo|nosudo`, then runs the
/// body as root (directly, or through `sudo -n`; with `nosudo` nothing). The body:
/// `STATE_DIR lock|nolock N PATH*N (KEY IFFILE COUNT WORD...)...`:
/// 1. `lock`: takes `STATE_DIR/lock` (flock on fd 9, held by this shell until it ends; exit 75
///    when someone else holds it, 127 without flock) and prints `K8SOIDC-LOCKED`;
/// 2. prints each PATH as a `K8SOIDC-FILE` record;
/// 3. for each command group whose IFFILE is `-` or an existing file, runs the COUNT words:
///    its standard output (exact bytes) as a `K8SOIDC-FILE present KEY` record, or
///    `K8SOIDC-FILE absent KEY` and `K8SOIDC-NOTE KEY <first line of its error>`;
/// 4. prints `K8SOIDC-READ-END`; with `lock`, then holds the lock while standard input keeps
///    receiving a `.` at least every 30 s (the client sends one every 5 s).
pub(crate) fn begin(args: &[String]) -> String {
    let body = render(
        "lock and read (as root)",
        args,
        &format!("{FIRST_FN}{RECORD_FN}{BEGIN_BODY}"),
        None,
    );
    format!(
        "# k8soidc: privileges, then lock and read\nb=$(cat <<'{BODY}'\n{body}{BODY}\n)\n{OPEN}\n"
    )
}

const OPEN: &str = r#"if [ "$(id -u)" = 0 ]; then echo K8SOIDC-PRIV root; exec sh -c "$b"; fi
if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo K8SOIDC-PRIV sudo; exec sudo -n sh -c "$b"; fi
echo K8SOIDC-PRIV nosudo"#;

const BEGIN_BODY: &str = r#"state=$1 mode=$2 n=$3; shift 3
if [ "$mode" = lock ]; then
  umask 077
  [ -d "$state" ] || mkdir -p "$state" || exit 70
  exec 9>>"$state/lock" || exit 70
  flock -n -E 75 9 || exit $?
  echo K8SOIDC-LOCKED
fi
i=0 tmp=
while [ $i -lt $n ]; do
  record "$1"; shift; i=$((i + 1))
done
while [ $# -ge 3 ]; do
  key=$1 iff=$2 c=$3; shift 3
  if [ "$iff" = - ] || [ -f "$iff" ]; then
    if ! command -v "$1" >/dev/null 2>&1; then
      printf 'K8SOIDC-FILE absent %s\n\nK8SOIDC-NOTE %s %s: command not found\n' "$key" "$key" "$1"
    else
      [ -n "$tmp" ] || tmp=$(mktemp -d) || exit 71
      if first "$c" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" 9>&-; then
        printf 'K8SOIDC-FILE present %s\n' "$key"; base64 -w0 < "$tmp/out"; printf '\n'
      else
        e=; IFS= read -r e < "$tmp/err" || :
        printf 'K8SOIDC-FILE absent %s\n\nK8SOIDC-NOTE %s %s\n' "$key" "$key" "$e"
      fi
    fi
  fi
  shift "$c"
done
[ -z "$tmp" ] || rm -rf "$tmp"
echo K8SOIDC-READ-END
if [ "$mode" = lock ]; then
  while [ "$(timeout 30 head -c1)" = . ]; do :; done
fi"#;

/// `STATE_DIR N (PATH SHA256|absent MODE)*N (COUNT WORD...)...`, data: one base64 line per
/// file. The whole file transaction in one round trip, each part only when the one before
/// succeeded: 1. each file still has the content that was read (SHA-256; else exit 73);
/// 2. every file is backed up to STATE_DIR/backups/<UTC time>/ (0700 dir, 0600 files, `FILES`
/// index with state, mode, owner and path, `SHA256SUMS`), verified (each copy's SHA-256,
/// read back from disk, is the one read in round trip 1) and fsynced (prints
/// `K8SOIDC-BACKUP <id>`); 3. each new content goes to a fresh staging file (see `staging`)
/// with the target's owner and mode (or MODE for a new file), fsynced (prints
/// `K8SOIDC-STAGED <path>`) — a failure in 1-3 removes the partial backup and the staging
/// files, changes nothing and exits 72 or 73; 4. the renames into place, atomic on one
/// filesystem, directories fsynced (prints `K8SOIDC-COMMITTED`); when one fails, the files
/// already renamed are put back from the backup (`K8SOIDC-UNDONE <path>` each, or
/// `K8SOIDC-NOT-UNDONE <path>`), the staging files removed, exit 74; 5. each restart command
/// in order (`K8SOIDC-RESTART-FAILED`, exit 79, when one fails; the client then restores the
/// backup). A PATH that is a symlink is written through: the file it points to gets the new
/// content with its own mode and owner (`stat -L`), and the link stays.
pub(crate) fn commit(args: &[String], data: &[String]) -> String {
    render(
        "back up, stage, rename into place, restart",
        args,
        &format!("{STAGING_FN}{FIRST_FN}{SHA_FN}{COMMIT_BODY}\n{RESTARTS}"),
        Some(data),
    )
}

const COMMIT_BODY: &str = r#"state=$1 n=$2; shift 2
staged=
fail() { echo "k8soidc: $*" >&2; [ -n "${b:-}" ] && rm -rf "$b"; [ -n "$staged" ] && rm -f $staged; exit 72; }
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "p_$k=\$1 w_$k=\$2 m_$k=\$3"; shift 3
done
ts=$(date -u +%Y%m%dT%H%M%SZ); id=$ts; i=1
umask 077
[ -d "$state/backups" ] || mkdir -p "$state/backups" || fail "cannot create $state/backups"
while [ -e "$state/backups/$id" ]; do i=$((i+1)); id=$ts-$i; done
b=$state/backups/$id
mkdir "$b" || { b=; fail "cannot create backup directory $state/backups/$id"; }
k=0 present= np=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "path=\$p_$k want=\$w_$k"
  r=$(real "$path") || fail "cannot resolve the symlink $path"
  eval "r_$k=\$r"
  if [ -f "$r" ]; then
    sha256 "$r"
    if [ "$sum" != "$want" ]; then echo "k8soidc: $path changed since it was read; run again" >&2; rm -rf "$b"; exit 73; fi
    cat "$r" > "$b/$k" || fail "cannot back up $path to $b"
    ao=$(stat -L -c '%a %u:%g' "$r") || fail "cannot read the mode and owner of $path"
    a=${ao% *} o=${ao#* }
    eval "s_$k=present a_$k=\$a o_$k=\$o"
    present="$present $k" np=$((np + 1))
    printf '%s\tpresent\t%s\t%s\t%s\n' "$k" "$a" "$o" "$path" >> "$b/FILES" || fail "cannot write $b/FILES"
  else
    if [ "$want" != absent ]; then echo "k8soidc: $path disappeared since it was read; run again" >&2; rm -rf "$b"; exit 73; fi
    eval "s_$k=absent"
    printf '%s\tabsent\t-\t-\t%s\n' "$k" "$path" >> "$b/FILES" || fail "cannot write $b/FILES"
  fi
done
(cd "$b" && sha256sum FILES $present > SHA256SUMS) 2>/dev/null || fail "cannot write the backup in $b (disk full?)"
v=0
while read -r sum f; do
  case $f in
    FILES) ;;
    ''|*[!0-9]*) fail "unexpected line in $b/SHA256SUMS" ;;
    *) eval "want=\$w_$f"; [ "$sum" = "$want" ] || fail "the backup copy $b/$f does not match what was read (disk full?)"; v=$((v + 1)) ;;
  esac
done < "$b/SHA256SUMS"
[ "$v" -eq "$np" ] || fail "cannot verify the backup in $b (disk full?)"
sync "$b" "$b"/* 2>/dev/null || sync
echo "K8SOIDC-BACKUP $id"
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "path=\$p_$k r=\$r_$k mode=\$m_$k"
  IFS= read -r line || fail "missing content for $path"
  dirof "$r"
  [ -d "$d" ] || mkdir -p "$d" || fail "cannot create $d"
  t=$(staging "$r") || fail "cannot create a staging file for $path"
  staged="$staged $t"
  printf '%s' "$line" | base64 -d > "$t" || fail "cannot write $t"
  eval "s=\$s_$k a=\${a_$k:-} o=\${o_$k:-}"
  if [ "$s" = present ]; then
    chown "$o" "$t" && { [ "$a" = 600 ] || chmod "$a" "$t"; }
  else
    chmod "$mode" "$t"
  fi || fail "cannot set owner and mode of $t"
  sync "$t" 2>/dev/null || sync
  eval "t_$k=\$t"
  echo "K8SOIDC-STAGED $t"
done
bk=$b b=
k=0
while [ $k -lt $n ]; do
  k=$((k + 1)); eval "t=\$t_$k path=\$p_$k r=\$r_$k"
  if ! mv -f "$t" "$r"; then
    echo "k8soidc: cannot rename $t to $r" >&2
    rm -f $staged
    j=1
    while [ $j -lt $k ]; do
      eval "p=\$p_$j r=\$r_$j s=\$s_$j a=\${a_$j:-} o=\${o_$j:-}"; u=
      if [ "$s" = present ]; then
        u=$(staging "$r") && cp "$bk/$j" "$u" && chown "$o" "$u" && chmod "$a" "$u" && mv -f "$u" "$r"
      else
        rm -f "$r"
      fi && echo "K8SOIDC-UNDONE $p" || { [ -n "${u:-}" ] && rm -f "$u"; echo "K8SOIDC-NOT-UNDONE $p"; }
      j=$((j + 1))
    done
    sync
    exit 74
  fi
  dirof "$r"
  sync "$d" 2>/dev/null || sync
done
echo K8SOIDC-COMMITTED"#;

/// `TIMEOUT ENDPOINT_FILE PROCESS READYZ LIVEZ UNIT N ADMIN_ARGV(N words) M READ_BACK(M paths)
/// FLAG...`: polls on the node, every 0.1 s at first and less often after each failing poll
/// (0.1, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4 s: 1.5 s in all), then every 0.5 s, until TIMEOUT seconds
/// have passed (and at most TIMEOUT*2+40 polls). A poll passes when (UNIT given) the unit is active, (PROCESS given) a
/// process named PROCESS runs whose `--oidc-*`/`--authentication-config` flags are exactly
/// FLAG..., and READYZ (LIVEZ when READYZ is 404) answers 2xx/3xx like a kubelet probe — or,
/// when it refuses an anonymous request (401/403) and an ADMIN_ARGV is given, that
/// authenticated check (the node's kubectl with its admin kubeconfig) succeeds. Healthy = two
/// passing polls in a row (the second 0.1 s after the first) on the same process, like a
/// probe's success threshold, so a process being replaced is not taken for the new one: prints
/// a `K8SOIDC-SUM` line per READ_BACK path ([`SUMS_FN`]), then `K8SOIDC-HEALTHY <polls> <pid>`
/// and exits 0; else `K8SOIDC-UNHEALTHY <polls> <reason of the last failing poll>`, exit 1.
///
/// Processes are found with one `grep -z` over every `/proc/*/cmdline` (where grep has `-z`;
/// else each is read); once found, a process is looked for again only when it has ended. The
/// script's own process and its ancestors (`sudo`, the login shell) are skipped: their argv
/// carries PROCESS and FLAG... as text too. READYZ is probed with one `curl` (or `wget`) per
/// poll, the poll's main cost (about 8 ms of CPU; reading /proc/net/tcp to see whether anything
/// listens yet costs more: the kernel walks its whole connection table), hence the back-off.
pub(crate) fn await_healthy(args: &[String]) -> String {
    render(
        "wait until the API server is healthy",
        args,
        &format!("{SHA_FN}{SUMS_FN}{AWAIT_BODY}"),
        None,
    )
}

const AWAIT_BODY: &str = r#"timeout=$1 efile=$2 proc=$3 readyz=$4 livez=$5 unit=$6 nadmin=$7; shift 7
nl='
'
i=0 nread=0 want=
for w do
  if [ "$i" -eq "$nadmin" ]; then nread=$w
  elif [ "$i" -gt $((nadmin + nread)) ]; then want="$want$w$nl"
  fi
  i=$((i + 1))
done
want=$(printf '%s' "$want" | sort)
parent() { read -r s 2>/dev/null < "/proc/$1/stat" || return 1; s=${s##*) }; set -- $s; ppid=$2; }
self=" $$ " p=$$ n=0
while [ $n -lt 64 ] && parent "$p" && p=$ppid && [ "$p" -gt 1 ]; do self="$self$p "; n=$((n + 1)); done
zgrep=; printf 'a\0' | grep -qzx a 2>/dev/null && zgrep=1
candidates() {
  if [ -n "$zgrep" ]; then grep -lszx -e "$proc" -e ".*/$proc" /proc/[0-9]*/cmdline
  else for d in /proc/[0-9]*; do echo "$d/cmdline"; done; fi
}
probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -sSk -o /dev/null -w '\n%{http_code}' --max-time 5 "$1" 2>&1
  else
    wget -q --no-check-certificate -T 5 -O /dev/null "$1" 2>&1 && printf '\n200' || printf '\n000'
  fi
}
endpoint() {
  [ -n "$efile" ] || return 0
  fb= fa= fp=
  v=$(sed -n -e "s/^[[:space:]-]*--bind-address=[\"']*\([^\"' ]*\).*/b=\1/p" \
    -e "s/^[[:space:]-]*--advertise-address=[\"']*\([^\"' ]*\).*/a=\1/p" \
    -e "s/^[[:space:]-]*--secure-port=[\"']*\([^\"' ]*\).*/p=\1/p" "$efile" 2>/dev/null)
  set -f; ifs=$IFS IFS=$nl
  for l in $v; do case $l in b=*) fb=${l#b=} ;; a=*) fa=${l#a=} ;; p=*) fp=${l#p=} ;; esac; done
  IFS=$ifs; set +f
  h=$fb; case $h in ''|0.0.0.0|::) h=$fa ;; esac
  u=${readyz#https://}; u=${u%%/*}
  readyz="https://${h:-${u%:*}}:${fp:-${u##*:}}/readyz"; livez="${readyz%/readyz}/livez"
}
alive() {
  [ -n "$1" ] && read -r s 2>/dev/null < "/proc/$1/stat" || return 1
  s=${s##*) }; case $s in Z*|X*|x*) return 1 ;; esac
}
endpoint
pid=
poll() {
  found=
  if [ -n "$unit" ] && ! systemctl is-active --quiet "$unit"; then why="unit $unit is not active"; return 1; fi
  if [ -n "$proc" ] && alive "$pid"; then
    found=$pid
  elif [ -n "$proc" ]; then
    pid=
    for d in $(candidates); do
      d=${d%/cmdline}
      case $self in *" ${d#/proc/} "*) continue ;; esac
      cmd=$(tr '\0' '\n' 2>/dev/null < "$d/cmdline") || continue
      [ -n "$zgrep" ] || printf '%s\n' "$cmd" | grep -qx -e "$proc" -e ".*/$proc" || continue
      have=$(printf '%s\n' "$cmd" | grep -E '^--(oidc-|authentication-config)' | sort)
      if [ "$have" = "$want" ]; then found=${d#/proc/}; pid=$found; break; fi
    done
    [ -n "$found" ] || { why="no $proc process with the expected flags is running yet"; return 1; }
  fi
  r=$(probe "$readyz"); code=${r##*"$nl"}
  if [ "$code" = 404 ]; then r=$(probe "$livez"); code=${r##*"$nl"}; fi
  case $code in 2??|3??) return 0 ;; esac
  if [ "$nadmin" -gt 0 ] && { [ "$code" = 401 ] || [ "$code" = 403 ]; }; then
    i=0
    for w do
      if [ "$i" -lt "$nadmin" ]; then set -- "$@" "$w"; fi
      shift; i=$((i + 1))
    done
    if a=$(timeout 10 "$@" 2>&1); then return 0; fi
    why="$readyz answered $code to an anonymous request, and \`$*\` failed: $(printf '%s\n' "$a" | head -n1)"; return 1
  fi
  why="$readyz answered ${code:-nothing} $(printf '%s\n' "$r" | head -n1)"; return 1
}
now() { if read -r t _ 2>/dev/null < /proc/uptime; then t=${t%.*}; else t=$(date +%s); fi; }
now; start=$t polls=0 last= why="no answer yet"
while [ "$polls" -lt $((timeout * 2 + 40)) ]; do
  polls=$((polls + 1))
  if poll "$@"; then
    if [ "$last" = "ok:$found" ]; then
      i=0
      for w do
        if [ "$i" -gt "$nadmin" ] && [ "$i" -le $((nadmin + nread)) ]; then sums "$w"; fi
        i=$((i + 1))
      done
      echo "K8SOIDC-HEALTHY $polls $found"; exit 0
    fi
    last="ok:$found"
  else
    last=
  fi
  now; [ $((t - start)) -ge "$timeout" ] && break
  if [ -n "$last" ]; then sleep 0.1; else
    case $polls in 1|2) sleep 0.1 ;; 3) sleep 0.15 ;; 4) sleep 0.2 ;; 5) sleep 0.25 ;; 6) sleep 0.3 ;; 7) sleep 0.4 ;; *) sleep 0.5 ;; esac
  fi
done
echo "K8SOIDC-UNHEALTHY $polls $why" | tr '\n' ' '; echo
exit 1"#;

/// `TIMEOUT PATH HASH info|timestamp UNIT|- COUNT METRICS_WORD... READ_BACK...`: polls the
/// metrics command every 0.5 s until the API server reports the file at PATH reloaded (see
/// [`super::Reload`]): a `K8SOIDC-SUM` line per READ_BACK path, `K8SOIDC-RELOADED <polls>`,
/// exit 0; else, when it recorded a failed
/// reload after PATH was written or TIMEOUT passed, `K8SOIDC-LOG <line>` with the API server's
/// last log line about the authentication config (when one can be read), then
/// `K8SOIDC-NOT-RELOADED <polls> <why>`, exit 1. "After the write" compares with PATH's
/// modification time (the commit renames a file written just before).
pub(crate) fn await_reload(args: &[String]) -> String {
    render(
        "wait until the API server reloads the AuthenticationConfiguration",
        args,
        &format!("{FIRST_FN}{SHA_FN}{SUMS_FN}{RELOAD_BODY}"),
        None,
    )
}

const RELOAD_BODY: &str = r#"timeout=$1 path=$2 hash=$3 mode=$4 unit=$5 c=$6; shift 6
w=$(stat -c %.9Y "$path" 2>/dev/null) || w=$(stat -c %Y "$path" 2>/dev/null) || { echo "K8SOIDC-NOT-RELOADED 0 $path is missing"; exit 1; }
verdict() {
  awk -v w="$w" -v h="$hash" -v mode="$mode" '
    /^apiserver_authentication_config_controller_automatic_reload_last_timestamp_seconds[{]/ {
      if ($0 ~ /status="success"/) s = $NF + 0
      if ($0 ~ /status="failure"/) f = $NF + 0
    }
    /^apiserver_authentication_config_controller_last_config_info[{]/ {
      if ((index($0, ",hash=\"" h "\"") || index($0, "{hash=\"" h "\"")) && $NF + 0 == 1) info = 1
    }
    END {
      if (f != "" && f >= w && (s == "" || f >= s)) { print "failure"; exit }
      if (mode == "info") { print (info ? "ok" : "wait"); exit }
      if (s != "" && s >= w) print "ok"; else print "wait"
    }'
}
logline() {
  if [ "$unit" != - ]; then l=$(journalctl -u "$unit" -n 200 --no-pager 2>/dev/null)
  else
    l=
    if command -v crictl >/dev/null 2>&1; then
      c=$(crictl ps -a --name kube-apiserver -q 2>/dev/null | head -n1)
      [ -n "$c" ] && l=$(crictl logs --tail 200 "$c" 2>&1)
    fi
    if [ -z "$l" ]; then
      f=$(ls -t /var/log/pods/*kube-apiserver*/kube-apiserver/*.log 2>/dev/null | head -n1)
      [ -n "$f" ] && l=$(tail -n 200 "$f")
    fi
  fi
  printf '%s
' "$l" | grep -E 'failed to (read|load|validate|update) authentication config' | tail -n1
}
start=$(date +%s) polls=0 why="no answer yet"
while [ "$polls" -lt $((timeout * 2 + 24)) ]; do
  polls=$((polls + 1))
  if m=$(first "$c" "$@" </dev/null 2>&1); then
    case $(printf '%s
' "$m" | verdict) in
      ok) shift "$c"; sums "$@"; echo "K8SOIDC-RELOADED $polls"; exit 0 ;;
      failure)
        l=$(logline); [ -n "$l" ] && printf 'K8SOIDC-LOG %s
' "$l"
        echo "K8SOIDC-NOT-RELOADED $polls the API server rejected the new file (a failed reload after it was written) and keeps its previous configuration"; exit 1 ;;
    esac
    why="the API server has not reported the new configuration yet"
  else
    why="the metrics could not be read: $(printf '%s
' "$m" | head -n1)"
  fi
  [ $(($(date +%s) - start)) -ge "$timeout" ] && break
  sleep 0.5
done
l=$(logline); [ -n "$l" ] && printf 'K8SOIDC-LOG %s
' "$l"
echo "K8SOIDC-NOT-RELOADED $polls $why" | tr '
' ' '; echo
exit 1"#;

/// `sha256 PATH` sets `sum` to the SHA-256 (hex) of the regular file PATH, or `absent` when
/// there is none: one `sha256sum`, its text cut by the shell. Every checksum of a file on the
/// node goes through it (the commit's check, the waits' read-back, the compare and swap, the
/// restore's check).
const SHA_FN: &str = r#"sha256() {
  if [ -f "$1" ]; then sum=$(sha256sum < "$1"); sum=${sum%% *}; else sum=absent; fi
}
"#;

/// `sums PATH...`: a line `K8SOIDC-SUM SHA256 PATH` per file (`K8SOIDC-SUM absent PATH` when
/// missing): the read-back the waits end with.
const SUMS_FN: &str = r#"sums() {
  for p in "$@"; do
    sha256 "$p"; printf 'K8SOIDC-SUM %s %s\n' "$sum" "$p"
  done
}
"#;

/// `SHA256 COUNT READ_WORD*COUNT WRITE_WORD...`, data: the new content (base64). Compare and
/// swap in one round trip: runs the read command; when its output's SHA-256 is still SHA256
/// (what was read and edited), runs the write command with the content on standard input;
/// else exits 73 and writes nothing (80: the read failed).
pub(crate) fn compare_and_swap(args: &[String], data: &[String]) -> String {
    render(
        "compare and swap",
        args,
        &format!("{FIRST_FN}{SHA_FN}{CAS_BODY}"),
        Some(data),
    )
}

const CAS_BODY: &str = r#"want=$1 c=$2; shift 2
t=$(mktemp) || exit 71
if ! first "$c" "$@" </dev/null >"$t" 2>"$t.err"; then e=; IFS= read -r e < "$t.err" || :; [ -z "$e" ] || printf '%s\n' "$e" >&2; rm -f "$t" "$t.err"; exit 80; fi
sha256 "$t"; rm -f "$t" "$t.err"
if [ "$sum" != "$want" ]; then echo "k8soidc: it changed since it was read; run again" >&2; exit 73; fi
shift "$c"
base64 -d | "$@""#;

/// `STATE_DIR ID N (PATH SHA256|absent)*N (COUNT WORD...)...`: puts back every file of backup
/// ID (checksums verified first). With N > 0 it is a compare and swap: each PATH must still
/// have the SHA-256 given (what the run that made the backup wrote; `absent`: no file), or
/// nothing is restored (`K8SOIDC-CHANGED <path>` for each that differs, exit 73), so a run
/// never restores over another run's or a person's change. Present files go through a fresh
/// staging file (see `staging`: never a planted path) and a rename, with their recorded owner
/// and mode, through a symlink to the file it points to (the link stays); files that were
/// absent are removed; then the restart commands, in order.
pub(crate) fn restore(args: &[String]) -> String {
    render(
        "restore a backup",
        args,
        &format!("{STAGING_FN}{FIRST_FN}{SHA_FN}{RESTORE_BODY}\n{RESTARTS}"),
        None,
    )
}

const RESTORE_BODY: &str = r#"b=$1/backups/$2 n=$3; shift 3
[ -f "$b/FILES" ] || { echo "k8soidc: no backup in $b" >&2; exit 76; }
(cd "$b" && sha256sum -c --quiet SHA256SUMS) >&2 || { echo "k8soidc: backup $b fails its checksums; not restoring" >&2; exit 77; }
k=0 changed=
while [ $k -lt $n ]; do
  k=$((k + 1)); p=$1 want=$2; shift 2
  r=$(real "$p")
  sha256 "$r"
  if [ "$sum" != "$want" ]; then echo "K8SOIDC-CHANGED $p"; changed=1; fi
done
if [ -n "$changed" ]; then echo "k8soidc: not restoring: changed since this run wrote it (by another run or a person)" >&2; exit 73; fi
while IFS="$(printf '\t')" read -r k state mode owner path; do
  r=$(real "$path") || { echo "k8soidc: cannot resolve the symlink $path" >&2; exit 78; }
  if [ "$state" = present ]; then
    dirof "$r"; mkdir -p "$d"
    t=$(staging "$r") || { echo "k8soidc: cannot create a staging file for $path" >&2; exit 78; }
    cp "$b/$k" "$t" && chown "$owner" "$t" && chmod "$mode" "$t" && { sync "$t" 2>/dev/null || sync; } && mv -f "$t" "$r" || { rm -f "$t"; echo "k8soidc: cannot restore $path" >&2; exit 78; }
  else
    rm -f "$r"
  fi
  echo "K8SOIDC-RESTORED $path"
done < "$b/FILES"
sync"#;

/// `STATE_DIR`: lists backups, newest first: `ID<TAB>complete|incomplete<TAB>path path...`; a
/// backup is complete when its SHA256SUMS exists and verifies (a run stopped while writing one,
/// e.g. by a crash of the node, leaves it incomplete).
pub(crate) fn list(state: &str) -> String {
    render("list backups", &[state.to_string()], LIST_BODY, None)
}

const LIST_BODY: &str = r#"cd "$1/backups" 2>/dev/null || exit 0
for id in $(ls -1r); do
  [ -f "$id/FILES" ] || continue
  if [ -f "$id/SHA256SUMS" ] && (cd "$id" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1; then st=complete; else st=incomplete; fi
  printf '%s\t%s\t%s\n' "$id" "$st" "$(cut -f5 "$id/FILES" | tr '\n' ' ')"
done"#;

/// `UNIT|-`: the last API server log lines (crictl, else /var/log/pods; journalctl for a unit).
pub(crate) fn logs(unit: Option<&str>) -> String {
    render(
        "the API server's last log lines",
        &[unit.unwrap_or("-").to_string()],
        LOGS_BODY,
        None,
    )
}

const LOGS_BODY: &str = r#"if [ "$1" != - ]; then journalctl -u "$1" -n 20 --no-pager 2>&1; exit 0; fi
if command -v crictl >/dev/null 2>&1; then
  c=$(crictl ps -a --name kube-apiserver -q 2>/dev/null | head -n1)
  [ -n "$c" ] && crictl logs --tail 20 "$c" 2>&1 && exit 0
fi
f=$(ls -t /var/log/pods/*kube-apiserver*/kube-apiserver/*.log 2>/dev/null | head -n1)
[ -n "$f" ] && tail -n 20 "$f"
exit 0"#;

/// A command, as it is: `exec PROGRAM ARG...`.
pub(crate) fn run(command: &crate::Command) -> String {
    format!("# k8soidc: run\nexec {}\n", command.to_shell())
}

/// The shell of `body` with `args`, for commands that are scripts of their own (MicroK8s
/// after its install).
pub(crate) fn custom(name: &str, args: &[String], body: &str) -> String {
    render(name, args, &format!("{FIRST_FN}{body}\n{RESTARTS}"), None)
}
