package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/tools/layer"
)

func newLayer() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layer",
		Short: "Build host-shared EROFS layer images with dm-verity, as a Kata node's containerd does",
	}
	cmd.AddCommand(newLayerBuild())
	return cmd
}

func newLayerBuild() *cobra.Command {
	var out, image, mkfs, format string
	var io layer.ImageOptions
	cmd := &cobra.Command{
		Use:   "build (LAYER.tar[.gz|.zst] -o OUT | --image REF -o DIR)",
		Short: "Turn an OCI layer into layer.erofs + layer.erofs.dmverity and print its dm-verity root hash",
		Long: `Builds the EROFS image and dm-verity hash tree containerd's EROFS differ
writes for the layer (same mkfs.erofs flags, UUID and verity parameters), so
the root hash can be pinned in a pod's policy. A layer file's blob digest is
the sha256 of the file as given: build from the exact blob the registry
serves. See docs/layers.md.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o is required")
			}
			if (image == "") == (len(args) == 0) {
				return errors.New("give either a layer file or --image REF")
			}
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: text or json", format)
			}
			m, err := layer.LookupMkfs(cmd.Context(), mkfs)
			if err != nil {
				return err
			}
			start := time.Now()
			var res []*layer.Result
			if image != "" {
				res, err = layer.BuildImage(cmd.Context(), m, image, out, io)
			} else {
				var r *layer.Result
				r, err = layer.Build(cmd.Context(), m, args[0], out)
				res = append(res, r)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "built %d layer(s) with %s (erofs-utils %s) in %s\n",
				len(res), m.Path, m.Version, time.Since(start).Round(time.Millisecond))
			return printLayers(cmd, res, format, image == "")
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output image file (a directory with --image)")
	cmd.Flags().StringVar(&image, "image", "", `image to build every layer of: "docker://REF", "oci:DIR[:TAG]" or a registry reference`)
	cmd.Flags().StringVar(&mkfs, "mkfs-erofs", "", "mkfs.erofs to run (default: $PATH's or "+layer.BundledMkfs+", erofs-utils >= 1.8.2)")
	cmd.Flags().StringVar(&format, "format", "text", "output: text (root hash per line) or json")
	cmd.Flags().StringVar(&io.AuthFile, "authfile", "", "auth.json for the registry")
	cmd.Flags().StringVar(&io.RegistriesConf, "registries-conf", "", "registries.conf to use")
	cmd.Flags().StringVar(&io.Arch, "arch", "", "architecture to pick from a manifest list (default amd64)")
	cmd.Flags().BoolVar(&io.Insecure, "insecure", false, "allow a plain-HTTP or unverified-TLS registry (test registries)")
	return cmd
}

// layerJSON is one layer in --format json.
type layerJSON struct {
	Image      string   `json:"image"`
	BlobDigest string   `json:"blob_digest"`
	DiffID     string   `json:"diff_id"`
	RootHash   string   `json:"roothash"`
	HashOffset uint64   `json:"hashoffset"`
	UUID       string   `json:"uuid"`
	Erofs      string   `json:"erofs_utils"`
	Options    []string `json:"storage_options"`
}

// printLayers prints one root hash for a layer file, or a line per layer
// (root hash, blob digest, file) for an image.
func printLayers(cmd *cobra.Command, res []*layer.Result, format string, single bool) error {
	w := cmd.OutOrStdout()
	if format == "json" {
		var out []layerJSON
		opts := layer.StorageOptions(res) // partition 1 is the top layer
		for i, r := range res {
			out = append(out, layerJSON{Image: r.Image, BlobDigest: r.BlobDigest, DiffID: r.DiffID,
				RootHash: r.Verity.RootHashHex(), HashOffset: r.Verity.HashOffset, UUID: r.UUID,
				Erofs: r.Mkfs.Version, Options: opts[i]})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if single {
		_, err := fmt.Fprintln(w, res[0].Verity.RootHashHex())
		return err
	}
	for _, r := range res {
		if _, err := fmt.Fprintf(w, "%s %s %s\n", r.Verity.RootHashHex(), r.BlobDigest, filepath.Base(r.Image)); err != nil {
			return err
		}
	}
	return nil
}
