package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/initdata"
)

func newInitdata() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "initdata",
		Short: "Create initdata documents and the encodings Kata carries them in",
	}
	cmd.AddCommand(newInitdataCreate(), newInitdataDigest(), newInitdataAnnotation(), newInitdataImage())
	return cmd
}

func writeOut(cmd *cobra.Command, out string, b []byte) error {
	if out == "" || out == "-" {
		_, err := cmd.OutOrStdout().Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

func newInitdataCreate() *cobra.Command {
	var alg, polFile, out string
	var files []string
	cmd := &cobra.Command{
		Use:   "create [--policy FILE] [--file KEY=PATH]... [--algorithm sha256|sha384|sha512]",
		Short: "Write an initdata TOML document; its digest goes to stderr",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data := map[string]string{}
			if polFile != "" {
				files = append(files, initdata.KeyPolicy+"="+polFile)
			}
			for _, f := range files {
				key, path, ok := strings.Cut(f, "=")
				if !ok {
					key, path = filepath.Base(f), f
				}
				if key == "" {
					return fmt.Errorf("--file %q: empty key", f)
				}
				if _, dup := data[key]; dup {
					return fmt.Errorf("--file: key %q given twice", key)
				}
				b, err := readFileBounded(path, maxInitdataInput)
				if err != nil {
					return err
				}
				data[key] = string(b)
			}
			d, err := initdata.Create(alg, data)
			if err != nil {
				return err
			}
			if err := writeOut(cmd, out, d.Raw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s:%s\n", d.Algorithm, d.DigestHex())
			return nil
		},
	}
	cmd.Flags().StringVar(&alg, "algorithm", "sha256", "digest algorithm: sha256, sha384 or sha512")
	cmd.Flags().StringVar(&polFile, "policy", "", "policy file stored as policy.rego")
	cmd.Flags().StringArrayVar(&files, "file", nil, "KEY=PATH to store (aa.toml=..., cdh.toml=...)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout)")
	return cmd
}

// readInitdata reads and validates a TOML initdata document.
func readInitdata(path string) (*initdata.Initdata, error) {
	b, err := readFileBounded(path, initdata.MaxTOML)
	if err != nil {
		return nil, err
	}
	return initdata.Parse(b)
}

func newInitdataDigest() *cobra.Command {
	return &cobra.Command{
		Use:   "digest FILE",
		Short: "Print an initdata document's digest (its algorithm over the exact bytes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := readInitdata(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s\n", d.Algorithm, d.DigestHex())
			return nil
		},
	}
}

func newInitdataAnnotation() *cobra.Command {
	return &cobra.Command{
		Use:   "annotation FILE",
		Short: "Print the value for the pod annotation " + initdata.AnnotationKey,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := readInitdata(args[0])
			if err != nil {
				return err
			}
			v, err := initdata.Annotation(d.Raw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
			return nil
		},
	}
}

func newInitdataImage() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "image FILE -o IMAGE",
		Short: "Write the initdata block-device image the runtime attaches to the VM",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := readInitdata(args[0])
			if err != nil {
				return err
			}
			img, err := initdata.Image(d.Raw)
			if err != nil {
				return err
			}
			return writeOut(cmd, out, img)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image file (default stdout)")
	return cmd
}
