/**
 * Steps that pass messages and fds between processes over the scenario's channels
 * (AF_UNIX SOCK_SEQPACKET socketpairs the harness creates before it starts the
 * processes): `send` is sendmsg(2) with an optional SCM_RIGHTS fd, `recv` is
 * recvmsg(2), blocking until a message arrives, and binds the fd it carried.
 */
import { z } from 'zod';
import { SCM_RIGHTS, SOL_SOCKET } from '../../kernel/socket.ts';
import { CMSG_LEN, CMSG_SPACE, cmsghdr, iovec, msghdr } from '../../uapi/structs.ts';
import { identifier, registerStepKind } from '../step-kind.ts';
import { fdName } from './util.ts';

const MAX_TEXT = 256;

const channelName = identifier.meta({ description: 'A channel declared under `channels`.' });

registerStepKind({
  kind: 'send',
  summary:
    'sendmsg(2) on a channel: a message (text, default "x") and optionally an fd passed with SCM_RIGHTS; the receiver gets its own fd for the same file.',
  args: z.strictObject({
    channel: channelName,
    fd: fdName.optional().meta({ description: 'An fd to pass (a name bound in this process).' }),
    text: z
      .string()
      .min(1)
      .max(MAX_TEXT)
      .default('x')
      .meta({ description: 'The message text (default "x").' }),
  }),
  refs: (a) => [
    { name: a.channel, type: 'channel', path: ['channel'] },
    ...(a.fd === undefined ? [] : [{ name: a.fd, type: 'fd' as const, path: ['fd'] }]),
  ],
  label: (a) =>
    `send ${a.channel}${a.fd === undefined ? '' : ` fd ${a.fd}`}${a.text === 'x' ? '' : ` "${a.text}"`}`,
  async run(ctx, a) {
    const { sys } = ctx;
    const data = new TextEncoder().encode(a.text);
    const buf = ctx.scratch(data.length, 1);
    sys.poke(buf, data);
    const iov = ctx.scratch(iovec.size, 8);
    sys.writeStruct(iovec, iov, { iov_base: buf, iov_len: data.length });
    let control = 0;
    let controllen = 0;
    if (a.fd !== undefined) {
      controllen = CMSG_SPACE(4);
      control = ctx.scratch(controllen, 8);
      sys.writeStruct(cmsghdr, control, {
        cmsg_len: CMSG_LEN(4),
        cmsg_level: SOL_SOCKET,
        cmsg_type: SCM_RIGHTS,
      });
      sys.writeU32(control + CMSG_LEN(0), ctx.fd(a.fd));
    }
    const msg = ctx.scratch(msghdr.size, 8);
    sys.writeStruct(msghdr, msg, {
      msg_iov: iov,
      msg_iovlen: 1,
      msg_control: control,
      msg_controllen: controllen,
    });
    const ret = await sys.sendmsg(ctx.channelFd(a.channel), msg, 0);
    return ret < 0 ? { ret } : { ret, summary: `${ret} B${a.fd === undefined ? '' : ' + fd'}` };
  },
});

registerStepKind({
  kind: 'recv',
  summary:
    'recvmsg(2) on a channel: waits for the next message; with `as`, binds the fd it carried (a message without one fails the step).',
  args: z.union([
    channelName.transform((channel) => ({ channel, text: undefined as string | undefined })),
    z.strictObject({
      channel: channelName,
      text: z.string().optional().meta({ description: 'Check: the message text must be this.' }),
    }),
  ]),
  produces: 'fd',
  refs: (a) => [{ name: a.channel, type: 'channel', path: ['channel'] }],
  label: (a) => `recv ${a.channel}`,
  async run(ctx, a, step) {
    const { sys } = ctx;
    const buf = ctx.scratch(MAX_TEXT, 1);
    const iov = ctx.scratch(iovec.size, 8);
    sys.writeStruct(iovec, iov, { iov_base: buf, iov_len: MAX_TEXT });
    const controllen = CMSG_SPACE(4 * 4);
    const control = ctx.scratch(controllen, 8);
    const msg = ctx.scratch(msghdr.size, 8);
    sys.writeStruct(msghdr, msg, {
      msg_iov: iov,
      msg_iovlen: 1,
      msg_control: control,
      msg_controllen: controllen,
    });
    const ret = await sys.recvmsg(ctx.channelFd(a.channel), msg, 0);
    if (ret < 0) return { ret };
    const text = new TextDecoder().decode(sys.peek(buf, ret));
    const got = sys.readStruct(msghdr, msg);
    let fd = -1;
    if (got.msg_controllen >= BigInt(CMSG_LEN(4))) {
      const c = sys.readStruct(cmsghdr, control);
      if (c.cmsg_level === SOL_SOCKET && c.cmsg_type === SCM_RIGHTS) fd = sys.readS32(control + CMSG_LEN(0));
    }
    const summary = ret === 0 ? 'end of channel' : `"${text}"${fd >= 0 ? ` + fd ${fd}` : ''}`;
    const problems: string[] = [];
    if (a.text !== undefined && text !== a.text) problems.push(`got "${text}", expected "${a.text}"`);
    if (step.as !== undefined && fd < 0)
      problems.push(ret === 0 ? 'the channel was closed' : 'the message carried no fd');
    const out = {
      ret,
      summary,
      detail: { text, fd },
      ...(fd >= 0 ? { value: { type: 'fd' as const, fd, what: 'received fd' } } : {}),
    };
    return problems.length ? { ...out, problem: problems.join('; ') } : out;
  },
});
