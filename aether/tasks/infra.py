from invoke import Collection
namespace = Collection("infra")
