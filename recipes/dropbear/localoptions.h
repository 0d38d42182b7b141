/* amber: the root filesystem is read-only; /data, /run and /tmp are writable. */

/* Host keys live on the data partition. The service creates the directory and
 * runs dropbear with -R, which makes each key the first time a client needs it. */
#define DSS_PRIV_FILENAME "/data/etc/dropbear/dropbear_dss_host_key"
#define RSA_PRIV_FILENAME "/data/etc/dropbear/dropbear_rsa_host_key"
#define ECDSA_PRIV_FILENAME "/data/etc/dropbear/dropbear_ecdsa_host_key"
#define ED25519_PRIV_FILENAME "/data/etc/dropbear/dropbear_ed25519_host_key"

/* /var/run does not exist on amber. */
#define DROPBEAR_PIDFILE "/run/dropbear.pid"

/* Run from amber's supervisor, never from inetd. */
#define INETD_MODE 0

/* Packages' programs are in /bin and /sbin (exchange dirs of /ro); amber's own
 * commands (pkg, svc, reboot, poweroff) are in /amber/bin. */
#define DEFAULT_PATH "/amber/bin:/bin:/usr/bin"
#define DEFAULT_ROOT_PATH "/amber/bin:/bin:/sbin:/usr/bin:/usr/sbin"
#define DROPBEAR_PATH_SSH_PROGRAM "/bin/dbclient"
#define SFTPSERVER_PATH "/bin/sftp-server"
