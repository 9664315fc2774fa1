/*
 * cli_mpi.c - the processes of `mpirun -n R ditc sample --num-samples N`.
 *
 * Built with MPI (DITC_MPI, when CMake finds it) and started by a launcher
 * (mpirun/srun set OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE), ditc joins
 * MPI_COMM_WORLD; otherwise it is one process of one and nothing here calls
 * MPI.  Sample g goes to rank g mod R; rank 0 gathers and writes the file.
 * Every collective is entered by every rank the same number of times, so a
 * rank that fails still takes part and all of them stop together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/cli.h"

#ifdef DITC_MPI
#include <mpi.h>
#endif

static int launched_by_mpi(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE") || getenv("PMI_RANK");
}

int cli_mpi_init(CliMpi *m) {
  memset(m, 0, sizeof *m);
  m->size = 1;
#ifdef DITC_MPI
  if (!launched_by_mpi()) return 0;
  if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return cli_fail("MPI_Init failed");
  m->on = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &m->size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &m->local_rank);
  MPI_Comm_free(&node);
  return 0;
#else
  if (launched_by_mpi() && getenv("OMPI_COMM_WORLD_SIZE") && strcmp(getenv("OMPI_COMM_WORLD_SIZE"), "1"))
    return cli_fail("this ditc was built without MPI, and it was started as one of %s processes: rebuild with MPI "
                    "(libopenmpi-dev) to split the samples, or run it alone", getenv("OMPI_COMM_WORLD_SIZE"));
  return 0;
#endif
}

int cli_mpi_all_ok(const CliMpi *m, int ok) {
#ifdef DITC_MPI
  if (m->on) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
  }
#endif
  (void)m;
  return ok;
}

double cli_mpi_max(const CliMpi *m, double v) {
#ifdef DITC_MPI
  if (m->on) {
    double all = v;
    MPI_Allreduce(&v, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return all;
  }
#endif
  (void)m;
  return v;
}

/* Rank q (>0) sends its samples' bytes (q, q+R, ... below n, `per` bytes
 * each, packed in its own order) to rank 0, which puts each at g * per of
 * all; in chunks of at most 1 GiB so MPI's int counts hold. */
void cli_mpi_gather(const CliMpi *m, void *all, const void *mine, int64_t n, size_t per) {
#ifdef DITC_MPI
  if (!m->on) return;
  int64_t chunk = (int64_t)((1u << 30) / per);
  if (chunk < 1) chunk = 1;
  unsigned char *buf = m->rank == 0 ? xmalloc((size_t)chunk * per) : NULL;
  for (int q = 1; q < m->size; q++) {
    int64_t count = q < n ? (n - q + m->size - 1) / m->size : 0;
    for (int64_t at = 0; at < count; at += chunk) {
      int64_t k = count - at < chunk ? count - at : chunk;
      if (m->rank == q)
        MPI_Send((const unsigned char *)mine + at * per, (int)((size_t)k * per), MPI_BYTE, 0, 7, MPI_COMM_WORLD);
      else if (m->rank == 0) {
        MPI_Recv(buf, (int)((size_t)k * per), MPI_BYTE, q, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int64_t j = 0; j < k; j++)
          memcpy((unsigned char *)all + (size_t)(q + (at + j) * m->size) * per, buf + (size_t)j * per, per);
      }
    }
  }
  free(buf);
#else
  (void)m, (void)all, (void)mine, (void)n, (void)per;
#endif
}

void cli_mpi_finalize(CliMpi *m) {
#ifdef DITC_MPI
  /* Every rank has said what it has to say before any exits: mpirun kills
   * the others when one exits non-zero, which could cut off their message. */
  if (m->on) MPI_Barrier(MPI_COMM_WORLD);
  if (m->on) MPI_Finalize();
#endif
  m->on = 0;
}
