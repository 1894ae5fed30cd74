#!/bin/sh
# hcqw: record which uid holds the QPU of this host, for its resident QPU service
# (hcqw device serve --grants DIR). slurmd runs this as root, as Prolog when a job starts on
# this host and as Epilog when it ends; the uid and job id are SLURM's (from its job
# credential), never the job's own word. Hosts without the directory (cpu hosts) do nothing.
grants="{grants}"
[ -d "$grants" ] || exit 0
case "$SLURM_JOB_ID" in ''|*[!0-9]*) exit 0 ;; esac
case "$SLURM_JOB_UID" in ''|*[!0-9]*) exit 0 ;; esac
case "$SLURM_SCRIPT_CONTEXT" in
    prolog_slurmd)
        umask 022
        printf '%s %s\n' "$SLURM_JOB_UID" "$SLURM_JOB_ID" > "$grants/.$SLURM_JOB_ID.tmp" &&
            mv -f "$grants/.$SLURM_JOB_ID.tmp" "$grants/$SLURM_JOB_ID" ;;
    epilog_slurmd)
        rm -f "$grants/$SLURM_JOB_ID" ;;
esac
# Never fail: a failing Prolog drains the node. Without a record the job cannot reach the device.
exit 0
