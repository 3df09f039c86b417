#!/usr/bin/env bash
# ec2host.sh — "EC2-like hosts" as systemd-nspawn containers, for end-to-end acceptance tests.
#
# nonstop's copy (tests/system/, run by `make system-test`; the project never reads the tool's
# original at run time). Changed from the original in one place: PKGS adds nftables (the
# nftables steering's boot unit) and openssh-server (deploys over ssh without CodeDeploy),
# as an EC2 AMI has them. The image cache (/var/lib/ec2host/image) is keyed by the hash of PKGS
# and customize_rootfs, so the original tool on the same machine rebuilds it for itself (and
# this copy back again: ~30 s-2.5 min, refused while any host is up). The system tests add
# what they need per host at run time (nginx site, CodeDeploy agent stand-in, sshd settings,
# ec2-user's authorized key) and name their hosts nsys-*.
#
# Each host: Debian 12 rootfs, systemd as PID 1 (real boot), distro nginx as a systemd service
# (pid /run/nginx.pid, workers as www-data), `ec2-user` with NOPASSWD sudo, OpenJDK 17, Ruby, nftables, sshd; private IP on a host bridge (host side = .1).
#
# Usage: ec2host.sh <command> [args]
#   image [--rebuild]                 build (once) the cached rootfs under /var/lib/ec2host/image
#   up NAME [--ip A.B.C.D] [--keep] [--bind SRC[:DST]] [--bind-ro SRC[:DST]]
#                                     boot NAME; waits for systemd running/degraded + nginx active
#                                     + http://IP/ answering. Without --keep every `up` starts from a
#                                     clean copy of the image; --keep reuses the files of the last
#                                     `up --keep` run of NAME (and `down` then keeps them).
#   exec NAME [-u USER] [-e K=V]... [-w DIR] [-t] [--raw] [--] CMD [ARG...]
#                                     run CMD inside (default as root, cwd /) as a transient systemd
#                                     service (systemd-run --wait --pipe, KillMode=process so
#                                     background children survive); exit status = CMD's. 125 = the
#                                     harness itself failed (e.g. NAME not running).
#                                     -t: allocate a pty (--pty); --raw: plain nsenter, not under
#                                     the container's systemd.
#   cp NAME SRC DST [--chown U[:G]]   copy a host file/dir into NAME (cp -r semantics: into DST if
#                                     DST is an existing dir or ends with /, else as DST)
#   reboot NAME                       `systemctl reboot` inside; waits until it is back up (the
#                                     container's files are kept; /run, processes are not)
#   down NAME [--purge] | down --all [--purge]
#                                     clean shutdown (kill after EC2HOST_STOP_TIMEOUT), unmount,
#                                     delete ephemeral state; removes the bridge with the last host
#   ls                                list hosts          ip NAME      print NAME's IP
#   logs NAME                         console log         root NAME    host path of NAME's /
#   shell NAME [USER]                 interactive login shell (nsenter + su -l)
#   wait NAME                         wait until NAME is up (as `up` does)
#
# Environment: EC2HOST_ROOT (/var/lib/ec2host) EC2HOST_BRIDGE (ec2br0) EC2HOST_NET (10.77.0: a /24,
#   host gets .1) EC2HOST_SUITE (bookworm) EC2HOST_MIRROR (default: read from apt's sources)
#   EC2HOST_BOOT_TIMEOUT (120) EC2HOST_STOP_TIMEOUT (120) EC2HOST_CGROUP (unified: the container
#   sees a pure cgroup v2 tree; legacy; auto = nspawn's choice, hybrid here)
set -euo pipefail
umask 022

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
EROOT=${EC2HOST_ROOT:-/var/lib/ec2host}
IMG=$EROOT/image
MACHINES=$EROOT/machines
LOCKS=$EROOT/locks
BRIDGE=${EC2HOST_BRIDGE:-ec2br0}
NET=${EC2HOST_NET:-10.77.0}
SUITE=${EC2HOST_SUITE:-bookworm}
BOOT_TIMEOUT=${EC2HOST_BOOT_TIMEOUT:-120}
STOP_TIMEOUT=${EC2HOST_STOP_TIMEOUT:-120}
CG=ec2host                         # cgroup dir (in every cgroup hierarchy we use) for our hosts
CGMODE=${EC2HOST_CGROUP:-unified}  # what the container sees: unified (pure cgroup v2, as on Amazon
                                   # Linux 2023), legacy (v1), auto (nspawn's pick: hybrid here)
IMAGE_VERSION=1                    # bump when customize_rootfs changes meaningfully
CPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

PKGS=(systemd systemd-sysv dbus libpam-systemd nginx openjdk-17-jre-headless sudo curl ca-certificates
      procps iproute2 iputils-ping ruby ruby-logging ruby-aws-sdk-core ruby-aws-sdk-s3 ruby-zip
      ruby-minitar ruby-concurrent ruby-json unzip zip tar less psmisc lsof netcat-openbsd python3 jq
      nftables openssh-server)

DIE_RC=1
log()  { echo "[ec2host] $*" >&2; }
die()  { echo "ec2host: error: $*" >&2; exit "$DIE_RC"; }
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }
need_root() { [[ $EUID -eq 0 ]] || die "must run as root"; }
now_ms() { date +%s%3N; }
secs_since() { local t=$(( $(now_ms) - $1 )); printf '%d.%01d' $((t/1000)) $(((t%1000)/100)); }

valid_name() {
  [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad host name '$1' (use 1-31 chars [a-z0-9-], starting with a letter/digit)"
}

# ------------------------------------------------------------------ host packages
# cmd:package pairs the host needs
HOST_TOOLS=(systemd-nspawn:systemd-container nsenter:util-linux flock:util-linux setsid:util-linux
            mountpoint:util-linux ip:iproute2 curl:curl)
apt_updated=0
host_apt_install() {  # pkgs...
  mkdir -p "$EROOT"
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get install on the host: $*"
  if ! apt-get install -y --no-install-recommends "$@" >>"$EROOT/host-apt.log" 2>&1; then
    if ((apt_updated == 0)); then
      apt_updated=1
      log "install failed; running apt-get update once and retrying"
      apt-get update >>"$EROOT/host-apt.log" 2>&1 || true
      apt-get install -y --no-install-recommends "$@" >>"$EROOT/host-apt.log" 2>&1 \
        || die "apt-get install $* failed, see $EROOT/host-apt.log"
    else
      die "apt-get install $* failed, see $EROOT/host-apt.log"
    fi
  fi
}
ensure_host_tools() {  # extra cmd:pkg pairs...
  local pair cmd pkg missing=()
  for pair in "${HOST_TOOLS[@]}" "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  host_apt_install "${missing[@]}"
}

# ------------------------------------------------------------------ apt sources -> mirror
# Prints "URI SUITE" for every enabled 'deb' entry apt is configured with (one-line .list and
# deb822 .sources formats). Nothing is hard-coded: the mirror is whatever this host's apt uses.
apt_source_pairs() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '/^[ \t]*deb[ \t]/ { sub(/^[ \t]*deb[ \t]+/, ""); if ($0 ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, ""); print $1, $2 }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '
      function flush() {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^(no|false|0)$/) {
          n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (U[i] != "" && S[j] != "") print U[i], S[j]
        }
        types = uris = suites = ""; enabled = "yes"; last = ""
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { if (last == "uris") uris = uris " " $0; else if (last == "suites") suites = suites " " $0; next }
      {
        key = tolower($0); sub(/:.*/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val); last = ""
        if (key == "types") types = val
        else if (key == "uris") { uris = val; last = "uris" }
        else if (key == "suites") { suites = val; last = "suites" }
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }' "$f"
  done
}
# Prints the apt source lines for the image: main suite (+ -updates, -security when configured).
image_sources() {
  local pairs main upd sec
  pairs=$(apt_source_pairs)
  main=${EC2HOST_MIRROR:-$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$pairs")}
  if [[ -z $main ]]; then  # host tracks another suite: reuse its (non-security) archive URI
    main=$(awk '$2 !~ /security|updates|backports/ { print $1; exit }' <<<"$pairs")
  fi
  [[ -n $main ]] || die "no 'deb' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/*.{list,sources}; set EC2HOST_MIRROR=URI"
  upd=$(awk -v s="$SUITE-updates" '$2 == s { print $1; exit }' <<<"$pairs")
  sec=$(awk -v s="$SUITE-security" '$2 == s { print $1; exit }' <<<"$pairs")
  echo "deb $main $SUITE main"
  [[ -n $upd ]] && echo "deb $upd $SUITE-updates main"
  [[ -n $sec ]] && echo "deb $sec $SUITE-security main"
  return 0
}

# ------------------------------------------------------------------ image
customize_rootfs() {  # $1 = rootfs dir (run in a chroot; no network needed)
  local R=$1
  cat > "$R/etc/ec2host-customize.sh" <<'EOS'
set -eu
echo ec2host > /etc/hostname
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
# No DNS: containers have no route off the private bridge (on purpose).
printf '# ec2host: no DNS server (the host has no route off its private bridge)\noptions timeout:1 attempts:1\n' > /etc/resolv.conf
: > /etc/machine-id                       # a fresh machine id at every boot (from the container UUID)
echo 'LANG=C.UTF-8' > /etc/locale.conf
echo 'LANG=C.UTF-8' > /etc/default/locale
# ec2-user as on Amazon Linux: uid 1000, own group, wheel/adm/systemd-journal, NOPASSWD sudo
getent group wheel >/dev/null || groupadd -r wheel
id ec2-user >/dev/null 2>&1 || useradd -m -u 1000 -U -s /bin/bash -c 'EC2 Default User' ec2-user
usermod -aG wheel,adm,systemd-journal,sudo ec2-user
printf '# Created by ec2host (cloud-init writes this file on EC2)\n\n# User rules for ec2-user\nec2-user ALL=(ALL) NOPASSWD:ALL\n' \
  > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
visudo -cq -f /etc/sudoers.d/90-cloud-init-users
# services
systemctl enable nginx.service systemd-networkd.service >/dev/null 2>&1
systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
  e2scrub_all.timer e2scrub_reap.service >/dev/null 2>&1
mkdir -p /etc/systemd/system/systemd-networkd-wait-online.service.d
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20\n' \
  > /etc/systemd/system/systemd-networkd-wait-online.service.d/ec2host.conf
# persistent journal (as on Amazon Linux 2023), kept small
mkdir -p /var/log/journal /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=persistent\nSystemMaxUse=64M\n' > /etc/systemd/journald.conf.d/ec2host.conf
mkdir -p /etc/systemd/network /etc/codedeploy-agent/conf
java -version >/dev/null 2>&1 || { echo "java does not run" >&2; exit 1; }
nginx -t >/dev/null 2>&1 || { echo "nginx -t fails" >&2; exit 1; }
EOS
  mount -t proc proc "$R/proc"   # java resolves its libs via /proc/self/exe
  local rc=0
  chroot "$R" /bin/sh /etc/ec2host-customize.sh || rc=$?
  {
    echo "ec2host image v$IMAGE_VERSION, Debian $SUITE, built $(date -u +%FT%TZ)"
    echo "packages: ${PKGS[*]}"
    chroot "$R" java -version 2>&1 | head -1
  } > "$R/etc/ec2host-release"
  umount "$R/proc"
  rm -f "$R/etc/ec2host-customize.sh"
  return $rc
}

image_spec() {
  { echo "$IMAGE_VERSION $SUITE ${PKGS[*]}"; declare -f customize_rootfs; } | sha256sum | cut -c1-16
}
image_ok() { [[ -d $IMG/rootfs && -f $IMG/stamp ]]; }

any_running() { local d; for d in "$MACHINES"/*/; do [[ -d $d ]] && is_running "$(basename "$d")" && return 0; done; return 1; }

cmd_image() {
  local rebuild=0
  while (($#)); do case $1 in --rebuild) rebuild=1;; *) die "image: unknown argument '$1'";; esac; shift; done
  need_root
  mkdir -p "$IMG" "$LOCKS"
  exec 9>"$LOCKS/global.lock"; flock 9
  local spec; spec=$(image_spec)
  if image_ok && ((rebuild == 0)); then
    if [[ $(cat "$IMG/stamp") == "$spec" ]]; then
      log "image up to date: $IMG/rootfs ($(head -1 "$IMG/rootfs/etc/ec2host-release" 2>/dev/null))"
      return 0
    fi
    log "image spec changed (script edited): rebuilding"
  fi
  any_running && die "cannot (re)build the image while hosts are up (it is their overlay lower layer): run 'ec2host.sh down --all' first"
  ensure_host_tools mmdebstrap:mmdebstrap
  local -a sources; mapfile -t sources < <(image_sources)
  log "building Debian $SUITE rootfs with mmdebstrap from: ${sources[*]}"
  local t0; t0=$(now_ms)
  rm -rf "$IMG/rootfs.new"
  if ! mmdebstrap --mode=root --format=directory --variant=minbase \
        --include="$(IFS=,; echo "${PKGS[*]}")" --aptopt='Acquire::Retries "3"' \
        "$SUITE" "$IMG/rootfs.new" "${sources[@]}" >"$IMG/build.log" 2>&1; then
    tail -20 "$IMG/build.log" >&2
    die "mmdebstrap failed, see $IMG/build.log"
  fi
  customize_rootfs "$IMG/rootfs.new" >>"$IMG/build.log" 2>&1 || die "customizing the rootfs failed, see $IMG/build.log"
  rm -rf "$IMG/rootfs.old"
  [[ -d $IMG/rootfs ]] && mv "$IMG/rootfs" "$IMG/rootfs.old"
  mv "$IMG/rootfs.new" "$IMG/rootfs"
  rm -rf "$IMG/rootfs.old"
  echo "$spec" > "$IMG/stamp"
  log "image built in $(secs_since "$t0")s: $IMG/rootfs ($(du -sh "$IMG/rootfs" | cut -f1))"
}

# ------------------------------------------------------------------ cgroups
cg_roots() {  # the cgroup hierarchies our containers get a subtree in
  if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    echo /sys/fs/cgroup
  else
    [[ -d /sys/fs/cgroup/unified && $(stat -fc %T /sys/fs/cgroup/unified) == cgroup2fs ]] && echo /sys/fs/cgroup/unified
    [[ -d /sys/fs/cgroup/systemd ]] && echo /sys/fs/cgroup/systemd
  fi
  return 0
}
cg_procs() {  # all pids in NAME's cgroup subtrees
  local r
  for r in $(cg_roots); do
    [[ -d $r/$CG/$1 ]] && find "$r/$CG/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -u
}
cg_kill() {
  local r p
  for r in $(cg_roots); do [[ -f $r/$CG/$1/cgroup.kill ]] && { echo 1 > "$r/$CG/$1/cgroup.kill"; } 2>/dev/null || true; done
  for p in $(cg_procs "$1"); do kill -KILL "$p" 2>/dev/null || true; done
}
cg_remove() {
  local r
  for r in $(cg_roots); do
    [[ -d $r/$CG/$1 ]] && find "$r/$CG/$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  return 0
}

# ------------------------------------------------------------------ network
ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE"
    log "created bridge $BRIDGE ($NET.1/24; no NAT, no forwarding: hosts reach only this machine and each other)"
  fi
  sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1" 2>/dev/null || true   # IPv4 only, like a default VPC
  ip -4 addr show dev "$BRIDGE" | grep -q "inet $NET.1/24" || ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}
remove_shared_if_unused() {  # the bridge and our parent cgroups, once no host runs
  any_running && return 0
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE" 2>/dev/null && log "removed bridge $BRIDGE"
  fi
  local r; for r in $(cg_roots); do [[ -d $r/$CG ]] && rmdir "$r/$CG" 2>/dev/null || true; done
  return 0
}
used_ips() {  # IPs of hosts that run or are being started by a live `up`
  local d n
  for d in "$MACHINES"/*/; do
    n=$(basename "$d")
    [[ -f $d/ip ]] || continue
    if is_running "$n" || pid_alive_cmd "$(cat "$d/up.pid" 2>/dev/null)" " up $n\( \|$\)"; then cat "$d/ip"; fi
  done
  return 0
}
alloc_ip() {
  local used i; used=" $(used_ips | tr '\n' ' ') "
  for ((i = 2; i < 255; i++)); do [[ $used == *" $NET.$i "* ]] || { echo "$NET.$i"; return 0; }; done
  die "no free address in $NET.0/24"
}

# ------------------------------------------------------------------ machine state
mdir() { echo "$MACHINES/$1"; }
pid_alive_cmd() {  # pid pattern : pid alive and its cmdline matches
  [[ -n $1 && -r /proc/$1/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}
is_running() {  # supervisor alive
  local f; f=$(mdir "$1")/supervisor.pid
  [[ -f $f ]] && pid_alive_cmd "$(cat "$f" 2>/dev/null)" "__supervise $1\( \|$\)"
}
nspawn_pid() {
  local f p; f=$(mdir "$1")/nspawn.pid
  [[ -f $f ]] || return 1
  p=$(cat "$f" 2>/dev/null); pid_alive_cmd "$p" "systemd-nspawn" && echo "$p"
}
leader_pid() {  # host pid of the container's PID 1 (a child of nspawn in another pid namespace)
  local np c
  np=$(nspawn_pid "$1") || return 1
  for c in $(cat /proc/"$np"/task/*/children 2>/dev/null); do
    if [[ $(readlink "/proc/$c/ns/pid" 2>/dev/null) != "$(readlink "/proc/$np/ns/pid")" ]]; then
      [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]] || return 1
      echo "$c"; return 0
    fi
  done
  return 1
}
require_running() {
  [[ -d $(mdir "$1") ]] || die "no host '$1' (start it with: ec2host.sh up $1)"
  is_running "$1" || die "host '$1' is not running (start it with: ec2host.sh up $1)"
}
require_leader() {
  require_running "$1"
  local l; l=$(leader_pid "$1") || die "host '$1' is (re)booting: no init process yet (try: ec2host.sh wait $1)"
  echo "$l"
}
nsx() {  # raw: run a command in NAME's namespaces (not under its systemd)
  local l=$1; shift
  nsenter -t "$l" -m -u -i -n -p -C -r -w -- "$@"
}

machine_lock() { mkdir -p "$LOCKS"; exec 8>"$LOCKS/$1.lock"; flock 8; }

# ------------------------------------------------------------------ wait
wait_ready() {  # NAME TIMEOUT_S
  local name=$1 t=$2 deadline l="" st="" ip
  deadline=$(( $(date +%s) + t ))
  ip=$(cat "$(mdir "$name")/ip")
  while :; do
    is_running "$name" || { tail -25 "$(mdir "$name")/console.log" >&2 2>/dev/null; die "host '$name' stopped while booting (console log: $(mdir "$name")/console.log)"; }
    if l=$(leader_pid "$name"); then
      st=$(timeout 10 nsenter -t "$l" -m -u -i -n -p -C -r -w -- systemctl is-system-running 2>/dev/null || true)
      case $st in running|degraded) break;; maintenance|stopping) die "host '$name': systemd state '$st'";; esac
    fi
    (( $(date +%s) < deadline )) || die "host '$name' not up after ${t}s (systemd state '${st:-none}'; console log: $(mdir "$name")/console.log)"
    sleep 0.2
  done
  if [[ $st == degraded ]]; then
    log "warning: host '$name' is degraded; failed units: $(nsx "$l" systemctl list-units --failed --plain --no-legend 2>/dev/null | awk '{print $1}' | tr '\n' ' ')"
  fi
  while :; do
    st=$(nsx "$l" systemctl is-active nginx.service 2>/dev/null || true)
    [[ $st == active ]] && break
    [[ $st == failed ]] && die "host '$name': nginx.service failed"
    (( $(date +%s) < deadline )) || die "host '$name': nginx not active after ${t}s ($st)"
    sleep 0.2
  done
  # the host reaches the container's nginx (bounded: one request per 0.2s until the deadline)
  while ! curl -s -o /dev/null --noproxy '*' -m 2 "http://$ip/"; do
    (( $(date +%s) < deadline )) || die "host '$name': http://$ip/ not reachable from the host after ${t}s"
    sleep 0.2
  done
}

# ------------------------------------------------------------------ up
cmd_up() {
  local name="" ip="" keep=0 a
  local -a binds=()
  while (($#)); do
    case $1 in
      --ip) ip=${2:-}; shift;;
      --ip=*) ip=${1#*=};;
      --keep) keep=1;;
      --bind|--bind-ro) [[ -n ${2:-} ]] || die "$1 needs SRC[:DST]"; binds+=("${1#--} $2"); shift;;
      --bind=*|--bind-ro=*) a=${1#--}; binds+=("${a%%=*} ${a#*=}");;
      -*) die "up: unknown option '$1'";;
      *) [[ -z $name ]] || die "up: one NAME only"; name=$1;;
    esac
    shift
  done
  [[ -n $name ]] || die "usage: ec2host.sh up NAME [--ip A.B.C.D] [--keep] [--bind SRC[:DST]] [--bind-ro SRC[:DST]]"
  valid_name "$name"
  need_root
  case $CGMODE in unified|legacy|auto) ;; *) die "EC2HOST_CGROUP must be unified, legacy or auto (not '$CGMODE')";; esac
  ensure_host_tools
  local b; for b in "${binds[@]}"; do b=${b#* }; [[ -e ${b%%:*} ]] || die "bind source '${b%%:*}' does not exist"; done
  if [[ -n $ip ]]; then
    [[ $ip =~ ^${NET//./\\.}\.([0-9]{1,3})$ ]] && (( BASH_REMATCH[1] >= 2 && BASH_REMATCH[1] <= 254 )) \
      || die "--ip must be in $NET.2-$NET.254 (the bridge is $NET.0/24, the host is $NET.1; set EC2HOST_NET for another /24)"
  fi
  image_ok || { log "no image yet: building it"; ( cmd_image ); }
  [[ $(cat "$IMG/stamp") == "$(image_spec)" ]] || log "warning: the image is older than this script; run 'ec2host.sh image' (after down --all) to rebuild"
  machine_lock "$name"
  local M; M=$(mdir "$name")
  if is_running "$name"; then
    local cur; cur=$(cat "$M/ip")
    [[ -z $ip || $ip == "$cur" ]] || die "host '$name' is already up with IP $cur (down it first to change the IP)"
    log "host '$name' already up ($cur)"
    wait_ready "$name" "$BOOT_TIMEOUT"
    echo "$name $cur"
    return 0
  fi
  # stale state from an earlier run (crash, host reboot, container powered itself off)
  cleanup_runtime "$name"
  (
    exec 9>"$LOCKS/global.lock"; flock 9
    if [[ -z $ip ]]; then
      if ((keep)) && [[ -f $M/ip ]] && ! used_ips | grep -qx "$(cat "$M/ip")"; then ip=$(cat "$M/ip"); else ip=$(alloc_ip); fi
    fi
    used_ips | grep -qx "$ip" && die "IP $ip is used by another running host"
    ip -4 addr show | grep -q "inet $ip/" && die "IP $ip is already configured on this machine"
    ensure_bridge
    mkdir -p "$M"
    echo "$$" > "$M/up.pid"           # reserves the IP until the supervisor runs
    echo "$ip" > "$M/ip.new"; mv "$M/ip.new" "$M/ip"
    printf 'supervisor starting\n' > "$M/state"
  ) || exit $?
  ip=$(cat "$M/ip")
  if ((keep == 0)) || [[ ! -f $M/keep ]]; then
    rm -rf "$M/upper" "$M/work"
  fi
  ((keep)) && touch "$M/keep" || rm -f "$M/keep"
  mkdir -p "$M/upper" "$M/work" "$M/root"
  printf '%s\n' "${binds[@]}" | sed '/^$/d' > "$M/binds"
  mountpoint -q "$M/root" || mount -t overlay "ec2host-$name" \
      -o "lowerdir=$IMG/rootfs,upperdir=$M/upper,workdir=$M/work" "$M/root" \
      || die "overlay mount failed for $M/root"
  # per-host identity and network (systemd-networkd inside configures host0 at every boot)
  local R=$M/root
  echo "$name" > "$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$name" "$ip" "$name" > "$R/etc/hosts"
  cat > "$R/etc/systemd/network/10-ec2host-host0.network" <<EOF
# written by ec2host.sh up: private address on the host bridge $BRIDGE (host = $NET.1).
# No Gateway= on purpose: nothing off this bridge is reachable.
[Match]
Name=host0

[Network]
Address=$ip/24
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  rm -f "$M/stop-requested" "$M/boots" "$M/nspawn.pid"
  rm -f "$M/supervisor.pid"
  : > "$M/console.log"
  local t0 i; t0=$(now_ms)
  setsid "$SELF" __supervise "$name" </dev/null >>"$M/console.log" 2>&1 8>&- 9>&- &
  for ((i = 0; i < 100; i++)); do [[ -s $M/supervisor.pid ]] && break; sleep 0.05; done
  [[ -s $M/supervisor.pid ]] || die "the supervisor of '$name' did not start (see $M/console.log)"
  ( wait_ready "$name" "$BOOT_TIMEOUT" ) || die "boot of '$name' failed; inspect: ec2host.sh logs $name / ec2host.sh exec $name journalctl -b; clean up: ec2host.sh down $name"
  log "host '$name' up in $(secs_since "$t0")s: ip $ip, init pid $(leader_pid "$name") (console: $M/console.log)"
  echo "$name $ip"
}

# runs detached (setsid) as long as the host is up: (re)starts nspawn; nspawn exits 133 when the
# container's systemd reboots (it expects its supervisor to start it again, as a service manager
# with RestartForceExitStatus=133 would).
cmd___supervise() {
  local name=$1 M r rc boots=0 quick=0 t_start
  M=$(mdir "$name")
  set +e
  trap '' HUP
  cd / || exit 1
  rc=0
  echo $$ > "$M/supervisor.pid.new" && mv "$M/supervisor.pid.new" "$M/supervisor.pid"
  for r in $(cg_roots); do mkdir -p "$r/$CG"; echo $BASHPID > "$r/$CG/cgroup.procs"; done
  local -a args=(systemd-nspawn --directory="$M/root" --machine="$name" --boot
                 --register=no --keep-unit --private-users=no
                 --network-bridge="$BRIDGE" --link-journal=no --resolv-conf=off --timezone=off
                 --console=read-only)
  local kind spec
  while read -r kind spec; do [[ -n $kind ]] && args+=("--$kind=$spec"); done < "$M/binds"
  case $CGMODE in
    unified) export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1;;
    legacy) export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0;;
    auto) ;;
    *) echo "[ec2host] bad EC2HOST_CGROUP='$CGMODE' (unified|legacy|auto)"; rm -f "$M/supervisor.pid"; exit 1;;
  esac
  while :; do
    [[ -f $M/stop-requested ]] && break
    boots=$((boots + 1)); echo "$boots" > "$M/boots"
    echo "[ec2host] $(date -u +%FT%TZ) boot #$boots: ${args[*]}"
    cg_remove "$name"
    t_start=$(date +%s)
    (
      for r in $(cg_roots); do mkdir -p "$r/$CG/$name"; echo $BASHPID > "$r/$CG/$name/cgroup.procs"; done
      exec "${args[@]}"
    ) &
    echo $! > "$M/nspawn.pid"
    echo "booting #$boots" > "$M/state"
    wait $!; rc=$?
    echo "[ec2host] $(date -u +%FT%TZ) systemd-nspawn exited with status $rc"
    rm -f "$M/nspawn.pid"
    [[ -f $M/stop-requested ]] && break
    [[ $rc -eq 133 ]] || break                   # 133 = the container rebooted
    if (( $(date +%s) - t_start < 3 )); then quick=$((quick + 1)); else quick=0; fi
    ((quick < 5)) || { echo "[ec2host] rebooting in a tight loop; giving up"; break; }
  done
  cg_kill "$name"; sleep 0.1; cg_remove "$name"
  echo "stopped (nspawn status $rc)" > "$M/state"
  rm -f "$M/supervisor.pid"
}

cmd_wait() {
  [[ $# -eq 1 ]] || die "usage: ec2host.sh wait NAME"
  require_running "$1"; wait_ready "$1" "$BOOT_TIMEOUT"; echo "$1 $(cat "$(mdir "$1")/ip")"
}

# ------------------------------------------------------------------ down
cleanup_runtime() {  # NAME: undo everything but the files (upper) of a host that is not running
  local name=$1 M; M=$(mdir "$name")
  [[ -d $M ]] || return 0
  cg_kill "$name"; cg_remove "$name"
  if [[ -d $M/root ]] && mountpoint -q "$M/root"; then
    umount "$M/root" 2>/dev/null || umount -l "$M/root" || log "warning: cannot unmount $M/root"
  fi
  rm -rf "/run/systemd/nspawn/propagate/$name" 2>/dev/null || true
  rm -f "$M/supervisor.pid" "$M/nspawn.pid" "$M/stop-requested"
  ip link del "vb-$name" 2>/dev/null || true
  return 0
}

stop_one() {  # NAME PURGE
  local name=$1 purge=$2 M np sp i
  M=$(mdir "$name")
  machine_lock "$name"
  if [[ ! -d $M ]]; then log "host '$name' does not exist"; return 0; fi
  if is_running "$name"; then
    sp=$(cat "$M/supervisor.pid")
    touch "$M/stop-requested"
    local t0; t0=$(now_ms)
    # SIGTERM to nspawn = clean poweroff of the container; re-sent if a reboot started a new nspawn
    local sent=""
    for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
      kill -0 "$sp" 2>/dev/null || break
      # (again every 5 s: a signal that lands before the container's systemd installed its
      # handlers is lost)
      if np=$(nspawn_pid "$name") && [[ $np != "$sent" ]] || ((i % 25 == 24)); then
        [[ -n $np ]] && { kill -TERM "$np" 2>/dev/null || true; }; sent=$np
      fi
      sleep 0.2
    done
    if kill -0 "$sp" 2>/dev/null; then
      log "host '$name' did not shut down in ${STOP_TIMEOUT}s: killing it"
      np=$(nspawn_pid "$name") && { kill -KILL "$np" 2>/dev/null || true; }
      cg_kill "$name"
      for ((i = 0; i < 50; i++)); do kill -0 "$sp" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$sp" 2>/dev/null || true
    fi
    log "host '$name' stopped in $(secs_since "$t0")s"
  fi
  cleanup_runtime "$name"
  if [[ -f $M/keep && $purge -eq 0 ]]; then
    rm -rf "$M/work"
    log "kept the files of '$name' in $M/upper (it was started with --keep; 'down $name --purge' deletes them)"
  else
    rm -rf "$M"
  fi
}

cmd_down() {
  local all=0 purge=0 name=""
  while (($#)); do
    case $1 in --all) all=1;; --purge) purge=1;; -*) die "down: unknown option '$1'";;
      *) [[ -z $name ]] || die "down: one NAME only"; name=$1;; esac
    shift
  done
  need_root
  if ((all)); then
    [[ -z $name ]] || die "down: NAME or --all, not both"
    local d
    for d in "$MACHINES"/*/; do [[ -d $d ]] && { ( stop_one "$(basename "$d")" "$purge" ) & }; done
    wait
  else
    [[ -n $name ]] || die "usage: ec2host.sh down NAME [--purge] | down --all [--purge]"
    valid_name "$name"
    ( stop_one "$name" "$purge" )
  fi
  (
    mkdir -p "$LOCKS"; exec 9>"$LOCKS/global.lock"; flock 9
    remove_shared_if_unused
  )
}

# ------------------------------------------------------------------ exec / shell
cmd_exec() {
  DIE_RC=125
  local name="" user=root cwd="" tty=0 raw=0
  local -a envs=()
  while (($#)); do   # options may come before or after NAME; the first word after NAME is CMD
    case $1 in
      -u|--user) [[ -n ${2:-} ]] || die "$1 needs a user"; user=$2; shift;;
      -e|--env) [[ ${2:-} == *=* ]] || die "$1 needs K=V"; envs+=("$2"); shift;;
      -w|--cwd) [[ -n ${2:-} ]] || die "$1 needs a directory"; cwd=$2; shift;;
      -t|--tty) tty=1;;
      --raw) raw=1;;
      --) shift; [[ -n $name ]] && break; [[ $# -ge 1 ]] || break; name=$1;;
      -*) [[ -n $name ]] && break; die "exec: unknown option '$1'";;
      *) [[ -n $name ]] && break; name=$1;;
    esac
    shift
  done
  [[ -n $name && $# -ge 1 ]] || die "usage: ec2host.sh exec NAME [-u USER] [-e K=V]... [-w DIR] [-t] [--raw] [--] CMD [ARG...]"
  need_root
  valid_name "$name"
  local l; l=$(require_leader "$name")
  if ((raw)); then
    local -a pre=(env -i HOME=/root USER=root LOGNAME=root)
    [[ $user == root ]] || pre=(setpriv --reuid="$user" --regid="$user" --init-groups --reset-env env)
    pre+=("PATH=$CPATH" LANG=C.UTF-8 "TERM=${TERM:-dumb}" "${envs[@]}")
    if [[ -n $cwd ]]; then
      exec nsenter -t "$l" -m -u -i -n -p -C -r -w -- "${pre[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@"
    fi
    exec nsenter -t "$l" -m -u -i -n -p -C -r -w -- "${pre[@]}" "$@"
  fi
  local -a run=(systemd-run --quiet --wait --collect --service-type=exec
                -p KillMode=process -p SendSIGHUP=no --uid="$user" --description="ec2host exec: $*")
  if ((tty)); then run+=(--pty); else run+=(--pipe); fi
  [[ -n $cwd ]] && run+=(--working-directory="$cwd")
  local e; for e in "${envs[@]}"; do run+=(-E "$e"); done
  # systemd expands $VAR/${VAR} in ExecStart= arguments (no --expand-environment=no before v254):
  # double every '$' so CMD gets its arguments verbatim.
  local -a argv=(); for e in "$@"; do argv+=("${e//\$/\$\$}"); done
  exec nsenter -t "$l" -m -u -i -n -p -C -r -w -- "${run[@]}" -- "${argv[@]}"
}

cmd_shell() {
  [[ $# -ge 1 ]] || die "usage: ec2host.sh shell NAME [USER]"
  need_root
  local l; l=$(require_leader "$1")
  exec nsenter -t "$l" -m -u -i -n -p -C -r -w -- env -i "TERM=${TERM:-xterm}" "PATH=$CPATH" su -l "${2:-root}"
}

# ------------------------------------------------------------------ cp
cmd_cp() {
  local chown="" a=()
  while (($#)); do case $1 in --chown) chown=${2:?}; shift;; --chown=*) chown=${1#*=};; *) a+=("$1");; esac; shift; done
  [[ ${#a[@]} -eq 3 ]] || die "usage: ec2host.sh cp NAME SRC DST [--chown USER[:GROUP]]"
  local name=${a[0]} src=${a[1]} dst=${a[2]}
  need_root
  [[ -e $src ]] || die "cp: '$src' does not exist"
  [[ $dst == /* ]] || die "cp: DST must be an absolute path inside the container"
  local l; l=$(require_leader "$name")
  src=$(readlink -f "$src")
  local base; base=$(basename "$src"); [[ $src == / ]] && die "cp: refusing to copy /"
  # tar stream into the container's mount namespace (so tmpfs mounts inside, e.g. /tmp, are honoured)
  tar -C "$(dirname "$src")" -cf - -- "$base" | nsx "$l" /bin/sh -c '
    set -e
    dst=$1 base=$2 chown=$3
    case $dst in */) mkdir -p "$dst";; esac
    if [ -d "$dst" ]; then target=${dst%/}/$base; else target=$dst; mkdir -p "$(dirname "$dst")"; fi
    tmp=$(mktemp -d "$(dirname "$target")/.ec2host-cp.XXXXXX")
    trap "rm -rf \"$tmp\"" EXIT
    tar -xf - -C "$tmp"
    if [ -d "$tmp/$base" ] && [ -d "$target" ] && [ ! -L "$target" ]; then
      cp -a "$tmp/$base/." "$target/"
    elif [ -d "$target" ] && [ ! -L "$target" ]; then
      echo "cp: cannot overwrite directory $target with a non-directory" >&2; exit 1
    else
      rm -f "$target"; mv -T "$tmp/$base" "$target"
    fi
    [ -z "$chown" ] || chown -R "$chown" "$target"
  ' sh "$dst" "$base" "$chown" || die "cp: copying $src to $name:$dst failed"
}

# ------------------------------------------------------------------ reboot
cmd_reboot() {
  [[ $# -eq 1 ]] || die "usage: ec2host.sh reboot NAME"
  local name=$1 M l old_boots i
  need_root; valid_name "$name"
  machine_lock "$name"
  l=$(require_leader "$name")
  M=$(mdir "$name")
  old_boots=$(cat "$M/boots")
  local t0; t0=$(now_ms)
  timeout 30 nsenter -t "$l" -m -u -i -n -p -C -r -w -- systemctl reboot || log "warning: 'systemctl reboot' returned $?"
  # wait for the old init to go away and a new boot to start (stop jobs may take a while)
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    [[ $(cat "$M/boots" 2>/dev/null) != "$old_boots" ]] && ! kill -0 "$l" 2>/dev/null && break
    is_running "$name" || die "host '$name' stopped instead of rebooting (console: $M/console.log)"
    sleep 0.2
  done
  [[ $(cat "$M/boots" 2>/dev/null) != "$old_boots" ]] || die "host '$name' did not reboot within ${STOP_TIMEOUT}s"
  wait_ready "$name" "$BOOT_TIMEOUT"
  log "host '$name' rebooted in $(secs_since "$t0")s (boot #$(cat "$M/boots"), init pid $(leader_pid "$name"))"
}

# ------------------------------------------------------------------ misc
cmd_ls() {
  local d n st
  printf '%-20s %-10s %-15s %-8s %-6s %s\n' NAME STATE IP INIT BOOTS KEEP
  for d in "$MACHINES"/*/; do
    [[ -d $d ]] || continue
    n=$(basename "$d")
    if is_running "$n"; then st=running; else st=stopped; fi
    printf '%-20s %-10s %-15s %-8s %-6s %s\n' "$n" "$st" "$(cat "$d/ip" 2>/dev/null || echo -)" \
      "$(leader_pid "$n" 2>/dev/null || echo -)" "$(cat "$d/boots" 2>/dev/null || echo -)" "$([[ -f $d/keep ]] && echo yes || echo no)"
  done
}
cmd_ip()   { [[ $# -eq 1 ]] || die "usage: ec2host.sh ip NAME"; [[ -f $(mdir "$1")/ip ]] || die "no host '$1'"; cat "$(mdir "$1")/ip"; }
cmd_logs() { [[ $# -eq 1 ]] || die "usage: ec2host.sh logs NAME"; cat "$(mdir "$1")/console.log" 2>/dev/null || die "no host '$1'"; }
cmd_root() { [[ $# -eq 1 ]] || die "usage: ec2host.sh root NAME"; require_running "$1"; echo "$(mdir "$1")/root"; }

main() {
  local cmd=${1:-help}; shift || true
  case $cmd in
    image) cmd_image "$@";;
    up) cmd_up "$@";;
    down) cmd_down "$@";;
    exec) cmd_exec "$@";;
    cp) cmd_cp "$@";;
    reboot) cmd_reboot "$@";;
    wait) cmd_wait "$@";;
    shell) cmd_shell "$@";;
    ls|list|status) cmd_ls "$@";;
    ip) cmd_ip "$@";;
    logs) cmd_logs "$@";;
    root) cmd_root "$@";;
    __supervise) cmd___supervise "$@";;
    help|-h|--help) usage;;
    *) usage >&2; die "unknown command '$cmd'";;
  esac
}
main "$@"
