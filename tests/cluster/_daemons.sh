# Shared by slurm_up.sh and slurm_down.sh (sourced): which recorded daemon processes are really ours.
# Expects RUN_DIR (where NAME.pid files hold "pid starttime comm").

starttime() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null; }

# is_ours NAME -> 0 if the process recorded in $RUN_DIR/NAME.pid is alive,
# has the expected command name and the same start time.
is_ours() {
  local f=$RUN_DIR/$1.pid pid st comm
  [ -s "$f" ] || return 1
  read -r pid st comm < "$f" || return 1
  [ -d "/proc/$pid" ] || return 1
  # an exited daemon stays a zombie until PID 1 reaps it (~2 s here)
  [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
  [ "$(starttime "$pid")" = "$st" ] || return 1
}

# slurmd_records -> the names of the recorded slurmd processes: slurmd-NODE for each node (and the single
# "slurmd" of clusters started by an older slurm_up.sh)
slurmd_records() {
  local f
  for f in "$RUN_DIR"/slurmd.pid "$RUN_DIR"/slurmd-*.pid; do [ -e "$f" ] && basename "$f" .pid; done
}

any_slurmd_ours() {
  local name
  for name in $(slurmd_records); do is_ours "$name" && return 0; done
  return 1
}
