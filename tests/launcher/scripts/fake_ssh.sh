#!/bin/sh
# Stands in for ssh as hydra's launcher (HYDRA_LAUNCHER_EXEC): runs the command on this machine, in a mount
# namespace of its own where DTRAIN_TEST_REMOTE_SHM is /dev/shm, so that the "remote host" keeps its MPI
# segments where the launching machine cannot see them. hydra calls it as: fake_ssh.sh -x HOST "COMMAND".
while [ "${1#-}" != "$1" ]; do shift; done  # ssh's options
shift  # the host
exec unshare -m sh -c 'mount --bind "$0" /dev/shm && exec sh -c "$1"' "$DTRAIN_TEST_REMOTE_SHM" "$*"
