/*
 * pam_rds_iam: the emulator's PAM module. It hands the whole password (an RDS IAM token,
 * which can run to several kilobytes) to the emulator's long-running verifier over a Unix
 * socket and returns its decision. pam_exec, which this replaces, cuts passwords at 511
 * characters and costs a fresh interpreter per login.
 *
 * PAM file line:  auth required /path/pam_rds_iam.so socket=/path/to/verifier.sock
 *
 * Wire format (request):  u32 user length, user, u32 token length, token (big-endian)
 *             (answer):   one byte '1' (accept) or '0' (reject), then a message up to EOF
 * The verifier knows which server asks from the socket it was reached on, so the module
 * sends no service name a server user could forge.
 *
 * Built at the emulator's first start: gcc -O2 -fPIC -shared pam_rds_iam.c -lpam.
 */

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#include <errno.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_TOKEN (64 * 1024)

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_field(int fd, const char *value)
{
	size_t len = strlen(value);
	unsigned char hdr[4] = {
		(unsigned char)(len >> 24), (unsigned char)(len >> 16),
		(unsigned char)(len >> 8), (unsigned char)len,
	};
	if (write_all(fd, hdr, sizeof hdr) < 0)
		return -1;
	return write_all(fd, value, len);
}

static const char *socket_arg(int argc, const char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], "socket=", 7) == 0)
			return argv[i] + 7;
	return NULL;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *path = socket_arg(argc, argv);
	const char *user = NULL;
	const char *token = NULL;
	struct sockaddr_un addr;
	struct timeval timeout = {10, 0};
	char answer[512];
	size_t got = 0;
	int fd, rc;

	(void)flags;
	if (path == NULL || strlen(path) >= sizeof addr.sun_path) {
		pam_syslog(pamh, LOG_ERR, "pam_rds_iam: missing or too long socket= argument");
		return PAM_AUTHINFO_UNAVAIL;
	}
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL)
		return PAM_USER_UNKNOWN;
	rc = pam_get_authtok(pamh, PAM_AUTHTOK, &token, NULL);
	if (rc != PAM_SUCCESS || token == NULL)
		return PAM_AUTH_ERR;
	if (strlen(token) > MAX_TOKEN)
		return PAM_AUTH_ERR;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return PAM_AUTHINFO_UNAVAIL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || write_field(fd, user) < 0 ||
	    write_field(fd, token) < 0) {
		pam_syslog(pamh, LOG_ERR, "pam_rds_iam: verifier at %s unreachable: %m", path);
		close(fd);
		return PAM_AUTHINFO_UNAVAIL;
	}
	while (got < sizeof answer - 1) {
		ssize_t n = read(fd, answer + got, sizeof answer - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	answer[got] = '\0';
	if (got == 0) {
		pam_syslog(pamh, LOG_ERR, "pam_rds_iam: no answer from the verifier at %s", path);
		return PAM_AUTHINFO_UNAVAIL;
	}
	if (answer[0] == '1')
		return PAM_SUCCESS;
	/* The server logs it (PostgreSQL: "error from underlying PAM layer"), as RDS would. */
	if (got > 1)
		pam_error(pamh, "%s", answer + 1);
	return PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_SUCCESS;
}
