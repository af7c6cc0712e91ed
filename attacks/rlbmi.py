"""RLB-MI: reinforcement-learning-based black-box model inversion (Han et al., CVPR 2023).

Per attacked identity y, a soft actor-critic agent (Haarnoja et al. 2018) learns to move in the
public GAN's latent space, rewarded by the target's released confidence (Sec. 3.2-3.3). An
episode (one step, as in the paper's experiments) starts from a random latent s ~ N(0, I); the
agent's action a in (-1, 1)^d (tanh-squashed Gaussian policy) gives the next state

    s' = alpha s + (1 - alpha) a                              (Eq. 2; alpha the diversity factor)

and the reward (Eq. 3-6, weights w1 = w2 = 2, w3 = 8):

    r = w1 log T_y(G(s')) + w2 log T_y(G(a))
        + w3 log max(eps, T_y(G(s')) - max_{i != y} T_i(G(s')))

With one-step episodes the critic's target is the reward itself. SAC's losses, per agent:
critics (twin) MSE(Q_k(s, a), r); actor E[exp(log_alpha) log pi(a|s) - min_k Q_k(s, a)];
temperature -log_alpha (log pi + H_target), H_target = -d. The reconstructions are the
``samples_per_identity`` states of highest T_y seen while training (the paper keeps the best).

The agents of all identities are independent networks trained as one batch
(:class:`AgentMLP`: a weight tensor per layer with a leading agent axis). Each round plays
``episodes_per_round`` episodes per agent, then takes ``updates_per_round`` gradient steps on
minibatches of the agent's replay buffer. The suite's query budget sets the number of episodes
(the paper: 40,000 per identity); with alpha = 0 the state and action images coincide and one
query serves both terms.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from attacks._black_box import FLOOR, as_reconstructions, budget_of, released, render
from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


class AgentMLP(nn.Module):
    """Independent two-hidden-layer MLPs, one per agent: input [A, B, in] -> [A, B, out]."""

    def __init__(self, agents: int, sizes: list[int], generator: torch.Generator):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            self.weights.append(
                nn.Parameter(
                    (torch.rand(agents, fan_in, fan_out, generator=generator) * 2 - 1) * bound
                )
            )
            self.biases.append(
                nn.Parameter((torch.rand(agents, 1, fan_out, generator=generator) * 2 - 1) * bound)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if index < last:
                x = torch.relu(x)
        return x


class Agents(nn.Module):
    """One SAC agent per identity: a squashed-Gaussian actor, twin critics, a temperature."""

    def __init__(self, agents: int, z_dim: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.actor = AgentMLP(agents, [z_dim, hidden, hidden, 2 * z_dim], generator)
        self.critics = nn.ModuleList(
            AgentMLP(agents, [2 * z_dim, hidden, hidden, 1], generator) for _ in range(2)
        )
        self.log_alpha = nn.Parameter(torch.zeros(agents, 1))
        self.target_entropy = -float(z_dim)

    def act(self, state: torch.Tensor, generator: torch.Generator | None = None):
        """A sampled action and its log-probability (tanh change of variables)."""
        mean, log_std = self.actor(state).chunk(2, dim=-1)
        std = log_std.clamp(-20, 2).exp()
        noise = (
            torch.randn(mean.shape, generator=generator)
            if generator is not None
            else torch.randn_like(mean)
        )
        raw = mean + std * noise
        action = torch.tanh(raw)
        log_prob = (
            -0.5 * noise.pow(2)
            - std.log()
            - 0.5 * math.log(2 * math.pi)
            - torch.log(1 - action.pow(2) + 1e-6)
        ).sum(-1)
        return action, log_prob

    def q(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([state, action], dim=-1)
        return torch.minimum(*(critic(joint).squeeze(-1) for critic in self.critics))

    def update(self, state, action, reward, optimizers) -> None:
        critic_opt, actor_opt, alpha_opt = optimizers
        joint = torch.cat([state, action], dim=-1)
        critic_loss = sum(
            (critic(joint).squeeze(-1) - reward).pow(2).mean() for critic in self.critics
        )
        critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_opt.step()

        new_action, log_prob = self.act(state)
        alpha = self.log_alpha.exp().detach()
        actor_loss = (alpha * log_prob - self.q(state, new_action)).mean()
        actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_opt.step()

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_opt.step()


def rlbmi_reward(
    probs_state: torch.Tensor,
    probs_action: torch.Tensor,
    labels: torch.Tensor,
    weights: tuple[float, float, float],
    eps: float = 1e-7,
) -> torch.Tensor:
    """Eqs. 3-6: confidence of the next state and of the action, and the state's margin."""
    own = probs_state.gather(-1, labels[..., None]).squeeze(-1)
    others = probs_state.scatter(-1, labels[..., None], float("-inf")).amax(dim=-1)
    action_own = probs_action.gather(-1, labels[..., None]).squeeze(-1)
    w1, w2, w3 = weights
    return (
        w1 * own.clamp_min(FLOOR).log()
        + w2 * action_own.clamp_min(FLOOR).log()
        + w3 * (own - others).clamp_min(eps).log()
    )


@register_attack(
    "rlbmi",
    modalities=("image",),
    access="scores",
    version="1.0",
    citation=Citation(
        "Reinforcement Learning-Based Black-Box Model Inversion Attacks",
        "Han et al.",
        "CVPR",
        2023,
        "https://arxiv.org/abs/2304.04625",
    ),
)
class RLBMI(UsesGANPrior, Attack):
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        cfg = self.cfg
        net = prior.generator.eval()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        classes, per_class = victims.classes, victims.per_class
        agents, z_dim = len(classes), prior.z_dim
        mix = float(cfg["diversity"])
        queries_per_episode = 1 if mix == 0 else 2
        episodes = budget_of(access) // (agents * queries_per_episode)
        per_round = int(cfg["episodes_per_round"])
        weights = (float(cfg["w_state"]), float(cfg["w_action"]), float(cfg["w_margin"]))

        model = Agents(agents, z_dim, int(cfg["hidden"]), generator)
        lr = float(cfg["lr"])
        optimizers = (
            torch.optim.Adam(model.critics.parameters(), lr=lr),
            torch.optim.Adam(model.actor.parameters(), lr=lr),
            torch.optim.Adam([model.log_alpha], lr=lr),
        )
        buffer = {
            "state": torch.empty(agents, 0, z_dim),
            "action": torch.empty(agents, 0, z_dim),
            "reward": torch.empty(agents, 0),
        }
        best_z = torch.zeros(agents, per_class, z_dim)
        best_score = torch.full((agents, per_class), -1.0)
        labels = classes[:, None]
        played = 0
        while played < episodes:
            count = min(per_round, episodes - played)
            state = torch.randn(agents, count, z_dim, generator=generator)
            with torch.no_grad():
                action, _ = model.act(state, generator)
            next_state = mix * state + (1 - mix) * action
            probs_state = released(access, net, next_state.flatten(0, 1)).view(agents, count, -1)
            probs_action = (
                probs_state
                if mix == 0
                else released(access, net, action.flatten(0, 1)).view(agents, count, -1)
            )
            reward = rlbmi_reward(probs_state, probs_action, labels.expand(-1, count), weights)
            for key, value in (("state", state), ("action", action), ("reward", reward)):
                buffer[key] = torch.cat([buffer[key], value], dim=1)
            # the best states seen so far are the reconstructions (per identity, top per_class)
            score = probs_state.gather(-1, labels.expand(-1, count)[..., None]).squeeze(-1)
            merged_score = torch.cat([best_score, score], dim=1)
            top = merged_score.topk(per_class, dim=1).indices
            best_z = torch.cat([best_z, next_state], dim=1).gather(
                1, top[..., None].expand(-1, -1, z_dim)
            )
            best_score = merged_score.gather(1, top)
            played += count
            size = buffer["reward"].shape[1]
            for _ in range(int(cfg["updates_per_round"])):
                pick = torch.randint(
                    size, (agents, min(int(cfg["batch_size"]), size)), generator=generator
                )
                own = torch.arange(agents)[:, None]  # each agent samples its own buffer
                model.update(
                    *(buffer[key][own, pick] for key in ("state", "action", "reward")), optimizers
                )
        return as_reconstructions(render(net, best_z.flatten(0, 1)), victims)
