/*
 * Preloaded into h2load for the rate-limited (--rps) runs: makes h2load send the requests that
 * came due every millisecond instead of every 10 ms.
 *
 * h2load arms its per-connection rate timer with `repeat = max(0.01, 1 / rps)` and calls
 * ev_timer_again (libev, a shared library in Debian's nghttp2-client). At thousands of requests
 * per second that is a burst of 1% of the rate every 10 ms, so what a p99 "at half load" measured
 * was how long a burst of up to 64 requests takes to drain. No other h2load timer repeats at
 * exactly 10 ms in the modes the bench uses, so the one with that repeat is the rate timer.
 * libev's epoll backend waits in whole milliseconds, so 1 ms is as fine as it gets.
 *
 * Says once on stderr that it lowered the timer: the bench fails without that line, so a build of
 * h2load that links libev statically (and so bypasses this) cannot pass for a paced run.
 *
 *   cc -O2 -shared -fPIC -o build/bench/h2load-1ms-timer.so bench/grpc/h2load-1ms-timer.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ev.h>
#include <stdio.h>

#define PACED_MARK "h2load-1ms-timer: rate timer lowered from 10 ms to 1 ms\n"

void ev_timer_again(struct ev_loop *loop, ev_timer *w) {
  static void (*real)(struct ev_loop *, ev_timer *);
  static int said;
  if (!real) real = (void (*)(struct ev_loop *, ev_timer *))dlsym(RTLD_NEXT, "ev_timer_again");
  if (w->repeat == 0.01) {
    w->repeat = 0.001;
    if (!said) {
      said = 1;
      fputs(PACED_MARK, stderr);
    }
  }
  real(loop, w);
}
