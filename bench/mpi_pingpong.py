"""Raw mpi4py intercommunicator ping-pong (the MPI baseline of bench/dispatch.py).

Run both sides with their own MPI_COMM_WORLD:
  mpiexec -n 1 python bench/mpi_pingpong.py server PORTFILE
  mpiexec -n 1 python bench/mpi_pingpong.py client PORTFILE STEPS SIZE MODE   (MODE: recv | iprobe)
The client prints one JSON line of round-trip times in microseconds.
"""

import json
import os
import sys
import time

import mpi4py

mpi4py.rc.thread_level = "multiple"  # as the service's transport, so the baseline pays the same MPI locking
from mpi4py import MPI  # noqa: E402


def main() -> None:
    role, port_file = sys.argv[1], sys.argv[2]
    try:
        if role == "server":
            port = MPI.Open_port()
            with open(port_file + ".tmp", "w") as f:
                f.write(port)
            os.replace(port_file + ".tmp", port_file)
            comm = MPI.COMM_SELF.Accept(port)
            status = MPI.Status()
            while True:
                comm.Probe(source=0, tag=MPI.ANY_TAG, status=status)
                buf = bytearray(status.Get_count(MPI.BYTE))
                comm.Recv([buf, MPI.BYTE], source=0, tag=MPI.ANY_TAG)
                if not buf:
                    break
                comm.Send([buf, MPI.BYTE], dest=0)
            comm.Disconnect()
            MPI.Close_port(port)
            os.unlink(port_file)
        else:
            steps, size, mode = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
            while not os.path.exists(port_file):
                time.sleep(0.02)
            comm = MPI.COMM_SELF.Connect(open(port_file).read())
            payload = b"x" * size
            status = MPI.Status()
            times = []
            for _ in range(steps + 200):
                t0 = time.perf_counter()
                comm.Send([payload, MPI.BYTE], dest=0)
                if mode == "iprobe":
                    while not comm.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
                        pass
                else:
                    comm.Probe(source=0, tag=MPI.ANY_TAG, status=status)
                buf = bytearray(status.Get_count(MPI.BYTE))
                comm.Recv([buf, MPI.BYTE], source=0)
                times.append(time.perf_counter() - t0)
            comm.Send([b"", MPI.BYTE], dest=0)
            comm.Disconnect()
            print(json.dumps({"us": [t * 1e6 for t in times[200:]]}))
    except BaseException:
        import traceback

        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)


if __name__ == "__main__":
    main()
