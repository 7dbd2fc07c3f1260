package app

import "syscall"

// devRedisProcAttr puts the dev redis-server in a process group of its own
// (the terminal's Ctrl-C is for campaign-api, which stops it last), and has
// the kernel stop it when campaign-api dies without doing so (kill -9), so
// that no orphan keeps writing the data folder.
func devRedisProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
