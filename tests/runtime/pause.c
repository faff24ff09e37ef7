// ef-pause: the sandbox ("pause") process of the runtime suite's pods. It holds
// the pod's namespaces open and does nothing else: sleeps until SIGTERM or
// SIGINT (containerd's StopPodSandbox), then exits 0. As PID 1 of the pod it
// also reaps children it inherits, so none stays a zombie. Built static: the
// image holds this one file and nothing else.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

int main(void) {
    // PID 1 in a PID namespace gets no default action for signals: without
    // handlers SIGTERM would be ignored and the runtime would have to SIGKILL.
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
    sigemptyset(&stop.sa_mask);
    sigemptyset(&child.sa_mask);
    if (sigaction(SIGTERM, &stop, NULL) != 0 || sigaction(SIGINT, &stop, NULL) != 0 ||
        sigaction(SIGCHLD, &child, NULL) != 0) {
        perror("ef-pause: sigaction");
        return 1;
    }
    // Blocked outside sigsuspend, so a signal cannot land between the check
    // and the wait and leave the process asleep.
    sigset_t stop_signals, waiting;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_signals, &waiting) != 0) {
        perror("ef-pause: sigprocmask");
        return 1;
    }
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    while (!stop_requested) {
        sigsuspend(&waiting);
    }
    return 0;
}
