/**
 * The command a terminal runs when the user names none: the login shell
 * /etc/passwd gives the environment's user (bash on most images), else
 * /bin/sh, started in the home directory. One spelling, so the terminal
 * route, every provider and `cvm supervisor exec` open the same shell.
 */

export const loginShell = [
  "/bin/sh",
  "-c",
  'shell=$(getent passwd "$(id -un 2>/dev/null)" 2>/dev/null | cut -d: -f7); [ -x "$shell" ] || shell=/bin/sh; cd ~ 2>/dev/null; exec "$shell" -l',
];
