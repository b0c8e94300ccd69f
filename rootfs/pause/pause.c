/*
 * pause is the sandbox's first process: it holds the pod's shared namespaces
 * and, as PID 1 of the shared PID namespace, reaps orphans. It exits with
 * status 0 on SIGTERM or SIGINT.
 *
 * TERM and INT get real handlers rather than sigwait: a PID 1 ignores
 * signals it does not catch, and agents read SigCgt in /proc/PID/status to
 * decide whether a SIGTERM would be ignored and must become a SIGKILL.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = stop };
	sigset_t set;
	int sig;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			return 1;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
