/*
 * pause is the sandbox's first process: it holds the pod's shared namespaces
 * and, as PID 1 of the shared PID namespace, reaps orphans. It exits on
 * SIGTERM or SIGINT; a PID-1 process without handlers would ignore them.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

int main(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			return 1;
		if (sig == SIGCHLD) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			continue;
		}
		return 0;
	}
}
