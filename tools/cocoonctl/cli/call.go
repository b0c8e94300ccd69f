package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// services are the ttrpc services cocoonctl can call by name.
var serviceNames = []protoreflect.FullName{"grpc.AgentService", "grpc.Health"}

func newCall(g *globals) *cobra.Command {
	var reqJSON string
	cmd := &cobra.Command{
		Use:   "call METHOD",
		Short: "Call any agent rpc with a protojson request and print the response as JSON",
		Long: "METHOD is an rpc name such as CreateSandbox or Health.Check. The request is protojson;\n" +
			"proto field names (container_id) and JSON names (containerId) are both accepted.\n" +
			"--json @FILE reads the request from FILE, --json - from standard input.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service, md, err := findMethod(args[0])
			if err != nil {
				return err
			}
			raw, err := readRequest(reqJSON, cmd)
			if err != nil {
				return err
			}
			req := newMessage(md.Input())
			if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, req.Interface()); err != nil {
				return fmt.Errorf("request for %s: %w", md.Name(), err)
			}
			resp := newMessage(md.Output())

			return g.withAgent(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := c.TTRPC.Call(ctx, string(service), string(md.Name()), req.Interface(), resp.Interface()); err != nil {
					return err
				}
				out, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Multiline: true}.Marshal(resp.Interface())
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reqJSON, "json", "{}", "request as protojson, @FILE, or - for stdin")
	return cmd
}

// findMethod resolves "CreateSandbox", "AgentService.CreateSandbox" or
// "Health.Check" to the service's full name and the method descriptor.
func findMethod(name string) (protoreflect.FullName, protoreflect.MethodDescriptor, error) {
	for _, sn := range serviceNames {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(sn)
		if err != nil {
			return "", nil, err
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			if name == string(md.Name()) || name == string(sd.Name())+"."+string(md.Name()) || name == string(sd.FullName())+"."+string(md.Name()) {
				return sd.FullName(), md, nil
			}
		}
	}
	return "", nil, fmt.Errorf("unknown method %q (see the rpcs of grpc.AgentService and grpc.Health)", name)
}

func newMessage(md protoreflect.MessageDescriptor) protoreflect.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		// Every message is registered by agentpb; this cannot happen.
		panic(fmt.Sprintf("message %s not registered: %v", md.FullName(), err))
	}
	return mt.New()
}

// maxRequestFile bounds what --json @FILE reads.
const maxRequestFile = 64 << 20

func readRequest(arg string, cmd *cobra.Command) ([]byte, error) {
	switch {
	case arg == "-":
		return readBounded(cmd.InOrStdin(), maxRequestFile)
	case len(arg) > 0 && arg[0] == '@':
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f, maxRequestFile)
	}
	return []byte(arg), nil
}

// ensure agentpb's descriptors are linked in for the registry lookups.
var _ = agentpb.File_agent_proto
