// fanfloor: the fan-out scenario with nothing but the kernel, to find the floor of its CPU cost
// and latency on the machine it runs on (load-tests/RESULTS.md, fan-out, "The floor").
//
// SOCKETS loopback TCP connections; every INTERVAL ms, SENDERS threads write one SIZE-byte
// message to each of them (the scheduled time in its first 8 bytes), one write() per message,
// as the server writes one frame per socket. RECEIVERS processes hold the other ends and read
// them with epoll, as the fan-out harness's receivers do. No WebSocket framing, no JSON, no
// hub, no async runtime: whatever this costs, the server and the receivers cost at least that.
//
// Usage: fanfloor [SOCKETS=10000] [SENDERS=2] [RECEIVERS=2] [INTERVAL_MS=50] [SECONDS=20] [SIZE=80]
// Prints, per receiver, the latency from the scheduled time to arrival (p50, p99, max) and CPU
// per message; for the sender, CPU per message. Needs SOCKETS / RECEIVERS + a few open files per
// receiver and SOCKETS + a few for the sender. Loopback only (127.0.0.1:19777), stops by itself.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORT 19777
#define HIST_US 2000000 /* latencies are counted per microsecond up to 2 s */

static int sockets = 10000, senders = 2, receivers = 2, interval_ms = 50, seconds = 20, size = 80;
static int *accepted;
static int64_t start_ns;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_until(int64_t ns) {
  struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &t, NULL)) {}
}

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Sender thread k: at every tick, one message to each of its sockets (every senders-th one). */
static void *send_ticks(void *arg) {
  long k = (long)arg;
  char message[4096];
  memset(message, 'x', sizeof message);
  int ticks = seconds * 1000 / interval_ms;
  for (int i = 0; i < ticks; i++) {
    int64_t at = start_ns + (int64_t)i * interval_ms * 1000000LL;
    sleep_until(at);
    memcpy(message, &at, 8);
    for (int j = k; j < sockets; j += senders)
      if (write(accepted[j], message, size) != size) die("write");
  }
  return NULL;
}

/* Receiver process: connects its share of the sockets, reads until the run is over. */
static void receive(int index, int count) {
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(PORT)};
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  int ep = epoll_create1(0);
  for (int i = 0; i < count; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (void *)&server, sizeof server)) die("connect");
    struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &e)) die("epoll_ctl");
  }
  long *hist = calloc(HIST_US, sizeof *hist);
  long messages = 0;
  double cpu_start = -1;
  char buf[65536];
  struct epoll_event ready[256];
  int64_t end = start_ns + (int64_t)seconds * 1000000000LL + 3000000000LL;
  while (now_ns() < end) {
    int n = epoll_wait(ep, ready, 256, 100);
    for (int i = 0; i < n; i++) {
      int r = read(ready[i].data.fd, buf, sizeof buf);
      for (int off = 0; off + size <= r; off += size) { /* messages never split: size << MSS */
        int64_t at;
        memcpy(&at, buf + off, 8);
        if (cpu_start < 0) cpu_start = cpu_seconds();
        long us = (now_ns() - at) / 1000;
        hist[us < 0 ? 0 : us >= HIST_US ? HIST_US - 1 : us]++;
        messages++;
      }
    }
  }
  double cpu = cpu_seconds() - cpu_start;
  long seen = 0, p50 = -1, p99 = -1, max = 0;
  for (long us = 0; us < HIST_US; us++) {
    if (!hist[us]) continue;
    max = us;
    seen += hist[us];
    if (p50 < 0 && seen * 2 >= messages) p50 = us;
    if (p99 < 0 && seen * 100 >= messages * 99) p99 = us;
  }
  printf("receiver %d: %ld messages, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; CPU %.2f s = %.2f us per message\n",
         index, messages, p50 / 1000.0, p99 / 1000.0, max / 1000.0, cpu, cpu * 1e6 / (messages ? messages : 1));
}

int main(int argc, char **argv) {
  int *params[] = {&sockets, &senders, &receivers, &interval_ms, &seconds, &size};
  for (int i = 1; i < argc && i <= 6; i++) *params[i - 1] = atoi(argv[i]);
  if (senders < 1 || senders > 64 || receivers < 1 || size < 8 || size > 4096 || interval_ms < 1) {
    fprintf(stderr, "usage: fanfloor [SOCKETS] [SENDERS 1-64] [RECEIVERS] [INTERVAL_MS] [SECONDS] [SIZE 8-4096]\n");
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(PORT)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 4096)) die("listen");
  start_ns = (now_ns() / 1000000000LL + 5) * 1000000000LL; /* connecting takes well under 4 s */
  for (int r = 0; r < receivers; r++)
    if (fork() == 0) {
      receive(r, sockets / receivers);
      return 0;
    }
  sockets = sockets / receivers * receivers;
  accepted = calloc(sockets, sizeof *accepted);
  for (int i = 0; i < sockets; i++) {
    if ((accepted[i] = accept(listener, NULL, NULL)) < 0) die("accept");
    setsockopt(accepted[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as the server's */
  }
  if (now_ns() > start_ns) {
    fprintf(stderr, "connecting %d sockets took longer than the 4 s allowed\n", sockets);
    return 1;
  }
  sleep_until(start_ns);
  double cpu_start = cpu_seconds();
  pthread_t threads[64];
  for (long k = 0; k < senders; k++) pthread_create(&threads[k], NULL, send_ticks, (void *)k);
  for (int k = 0; k < senders; k++) pthread_join(threads[k], NULL);
  double cpu = cpu_seconds() - cpu_start;
  long messages = (long)sockets * (seconds * 1000 / interval_ms);
  printf("sender: %ld messages in %d s (%d threads); CPU %.2f s = %.2f us per message = %.0fk messages per CPU-second\n",
         messages, seconds, senders, cpu, cpu * 1e6 / messages, messages / cpu / 1000);
  fflush(stdout);
  for (int r = 0; r < receivers; r++) wait(NULL);
  return 0;
}
