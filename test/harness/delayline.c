// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * A delay line between two network namespaces: a TUN device in each, and
 * every packet read from one written to the other a fixed time later. This
 * kernel has no netem (doc/design.md K17); the tests and the bench need real
 * round-trip times and MTU-sized packets.
 *
 *   delayline NS_A DEV_A NS_B DEV_B ONE_WAY_DELAY_US [QUEUE_PACKETS]
 *
 * Prints "ready" once both devices exist; the devices go when it exits.
 * Packets beyond the queue are dropped, as by a full link buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PACKET_MAX 2048

struct packet {
	uint64_t due_ns;
	uint16_t len;
	unsigned char data[PACKET_MAX];
};

struct queue {
	struct packet *ring;
	size_t size, head, count;
	uint64_t dropped;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* A TUN device in the named network namespace, opened from this one. */
static int open_tun(const char *netns, const char *dev)
{
	char path[256];
	snprintf(path, sizeof(path), "/var/run/netns/%s", netns);
	int home = open("/proc/self/ns/net", O_RDONLY);
	int target = open(path, O_RDONLY);
	if (home < 0 || target < 0)
		die(path);
	if (setns(target, CLONE_NEWNET) < 0)
		die("setns");
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
	if (fd < 0)
		die("/dev/net/tun");
	struct ifreq ifr = {0};
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF");
	if (setns(home, CLONE_NEWNET) < 0)
		die("setns back");
	close(home);
	close(target);
	return fd;
}

/* Reads every waiting packet of from into q, due delay from now. */
static void take(int from, struct queue *q, uint64_t delay_ns)
{
	for (;;) {
		struct packet scratch;
		struct packet *p = q->count < q->size ? &q->ring[(q->head + q->count) % q->size] : &scratch;
		ssize_t n = read(from, p->data, PACKET_MAX);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			die("read");
		}
		if (p == &scratch) {
			q->dropped++;
			continue;
		}
		p->len = n;
		p->due_ns = now_ns() + delay_ns;
		q->count++;
	}
}

/* Writes the packets of q that are due to to; returns when the next one is due (0: none waits). */
static uint64_t give(int to, struct queue *q)
{
	uint64_t now = now_ns();
	while (q->count > 0) {
		struct packet *p = &q->ring[q->head];
		if (p->due_ns > now)
			return p->due_ns;
		if (write(to, p->data, p->len) < 0 && errno == EAGAIN)
			return now + 100000;
		q->head = (q->head + 1) % q->size;
		q->count--;
	}
	return 0;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s NS_A DEV_A NS_B DEV_B ONE_WAY_DELAY_US [QUEUE_PACKETS]\n", argv[0]);
		return 2;
	}
	uint64_t delay_ns = strtoull(argv[5], NULL, 10) * 1000ULL;
	size_t size = argc > 6 ? strtoul(argv[6], NULL, 10) : 8192;
	int a = open_tun(argv[1], argv[2]);
	int b = open_tun(argv[3], argv[4]);
	struct queue ab = {calloc(size, sizeof(struct packet)), size, 0, 0, 0};
	struct queue ba = {calloc(size, sizeof(struct packet)), size, 0, 0, 0};
	if (!ab.ring || !ba.ring)
		die("calloc");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);

	struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
	while (!stop) {
		uint64_t next_ab = give(b, &ab), next_ba = give(a, &ba);
		uint64_t next = next_ab && next_ba ? (next_ab < next_ba ? next_ab : next_ba) : (next_ab | next_ba);
		struct timespec timeout, *wait = NULL;
		if (next) {
			uint64_t now = now_ns(), ns = next > now ? next - now : 0;
			timeout.tv_sec = ns / 1000000000ULL;
			timeout.tv_nsec = ns % 1000000000ULL;
			wait = &timeout;
		}
		if (ppoll(fds, 2, wait, NULL) < 0 && errno != EINTR)
			die("ppoll");
		if (fds[0].revents & POLLIN)
			take(a, &ab, delay_ns);
		if (fds[1].revents & POLLIN)
			take(b, &ba, delay_ns);
	}
	fprintf(stderr, "delayline: dropped %llu + %llu packets on full queues\n", (unsigned long long)ab.dropped,
		(unsigned long long)ba.dropped);
	return 0;
}
