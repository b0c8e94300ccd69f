// Command cocoonctl drives a Kata-compatible agent and works with cocoon's
// policies and initdata.
package main

import (
	"os"

	"github.com/cocoon-tee/cocoon/tools/cocoonctl/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
