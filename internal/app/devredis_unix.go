//go:build unix && !linux

package app

import "syscall"

// devRedisProcAttr puts the dev redis-server in a process group of its own:
// the terminal's Ctrl-C is for campaign-api, which stops it last.
func devRedisProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
